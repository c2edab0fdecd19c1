package activities

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/berth-dev/berth"
)

func TestPortsTaken(t *testing.T) {
	ports := []berth.PortMapping{{HostIP: "10.230.0.1", HostPort: 20005, ContainerPort: 8080}, {HostIP: "10.230.0.1", HostPort: 20050, ContainerPort: 9090}}
	for _, tc := range []struct {
		msg  string
		want []int
	}{
		{"driver failed programming external connectivity on endpoint x (abc): Error starting userland proxy: listen tcp4 10.230.0.1:20050: bind: address already in use", []int{20050}},
		{"driver failed programming external connectivity on endpoint x (abc): Bind for 10.230.0.1:20005 failed: port is already allocated", []int{20005}},
		// 200050 is not 20005: the port must end where the number ends.
		{"listen tcp4 10.230.0.1:200050: bind: address already in use", []int{20005, 20050}},
		{"no such image", nil},
	} {
		require.Equal(t, tc.want, portsTaken(errors.New(tc.msg), ports), tc.msg)
	}
}
