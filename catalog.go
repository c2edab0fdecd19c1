package berth

// ImageVersion is one tag of a repository in the platform registry, as the
// image catalogue reads it through the registry's API.
type ImageVersion struct {
	// Repository is namespace/name, without the registry's address.
	Repository string `json:"repository"`
	Tag        string `json:"tag"`
	Digest     string `json:"digest,omitempty"`
	// SizeBytes is the compressed size the registry keeps (config and layers).
	SizeBytes int64 `json:"sizeBytes"`
	// Error says why the tag's manifest could not be read.
	Error string `json:"error,omitempty"`
}

// MaxCatalogVersions bounds one catalogue read: beyond it, the list says
// it was cut rather than grow without end.
const MaxCatalogVersions = 2000
