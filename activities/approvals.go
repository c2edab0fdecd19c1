package activities

import (
	"context"
	"errors"

	"github.com/berth-dev/berth/store"
)

// ApprovalRecords is the part of the store approval steps write through.
type ApprovalRecords interface {
	CreateApproval(ctx context.Context, a *store.Approval) (*store.Approval, error)
	ExpireApproval(ctx context.Context, id uint, escalateTo []string) (*store.Approval, error)
	CancelApproval(ctx context.Context, id uint) error
}

// approvals finds the approval records on the store the worker was built
// with: berth's store keeps them beside the run records, and asserting here
// leaves NewStore's signature alone for every existing caller.
func (s *Store) approvals() (ApprovalRecords, error) {
	if a, ok := s.Records.(ApprovalRecords); ok {
		return a, nil
	}
	return nil, errors.New("this worker's store does not keep approvals")
}

// CreateApproval records an approval step; repeating it returns the same record.
func (s *Store) CreateApproval(ctx context.Context, a store.Approval) (*store.Approval, error) {
	ar, err := s.approvals()
	if err != nil {
		return nil, err
	}
	var invalid *store.InvalidError
	got, err := ar.CreateApproval(ctx, &a)
	if errors.As(err, &invalid) {
		return nil, fail(ErrInvalid, "%s", invalid.Msg)
	}
	return got, storeErr(err)
}

// ExpireInput applies an approval's timeout.
type ExpireInput struct {
	ApprovalID uint     `json:"approvalId"`
	EscalateTo []string `json:"escalateTo,omitempty"`
}

// ExpireApproval times an approval out, or escalates it, unless a decision
// won first; it returns the approval as the database has it.
func (s *Store) ExpireApproval(ctx context.Context, in ExpireInput) (*store.Approval, error) {
	ar, err := s.approvals()
	if err != nil {
		return nil, err
	}
	a, err := ar.ExpireApproval(ctx, in.ApprovalID, in.EscalateTo)
	return a, storeErr(err)
}

// CancelApproval closes an open approval of a cancelled run.
func (s *Store) CancelApproval(ctx context.Context, id uint) error {
	ar, err := s.approvals()
	if err != nil {
		return err
	}
	return storeErr(ar.CancelApproval(ctx, id))
}
