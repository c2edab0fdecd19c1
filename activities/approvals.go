package activities

import (
	"context"
	"errors"

	"github.com/berth-dev/berth"
)

// ApprovalRecords is the part of the store approval steps write through.
type ApprovalRecords interface {
	CreateApprovalStep(ctx context.Context, a berth.Approval) (*berth.Approval, error)
	ExpireApprovalStep(ctx context.Context, id uint, escalateTo []berth.Role) (*berth.Approval, error)
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
func (s *Store) CreateApproval(ctx context.Context, a berth.Approval) (*berth.Approval, error) {
	ar, err := s.approvals()
	if err != nil {
		return nil, err
	}
	got, err := ar.CreateApprovalStep(ctx, a)
	return got, storeErr(err)
}

// ExpireInput applies an approval's timeout.
type ExpireInput struct {
	ApprovalID uint         `json:"approvalId"`
	EscalateTo []berth.Role `json:"escalateTo,omitempty"`
}

// ExpireApproval times an approval out, or escalates it, unless a decision
// won first; it returns the approval as the database has it.
func (s *Store) ExpireApproval(ctx context.Context, in ExpireInput) (*berth.Approval, error) {
	ar, err := s.approvals()
	if err != nil {
		return nil, err
	}
	a, err := ar.ExpireApprovalStep(ctx, in.ApprovalID, in.EscalateTo)
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
