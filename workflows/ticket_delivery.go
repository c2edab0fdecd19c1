package workflows

import (
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/activities"
)

// TicketDeliveryName is the registered name of TicketDelivery.
const TicketDeliveryName = "TicketDelivery"

// TicketDeliveryID is the one id of a delivery pass: passes never overlap.
const TicketDeliveryID = "ticket-delivery"

// TicketDeliveryScheduleID is the Temporal Schedule that runs the passes.
const TicketDeliveryScheduleID = "berth-tickets"

// TicketDeliveryTimeout bounds one pass; what a cut pass did not send the
// next one sends, since every change waits in the records until marked sent.
const TicketDeliveryTimeout = 15 * time.Minute

// TicketDelivery tells the ticket system every incident change that is due.
func TicketDelivery(ctx workflow.Context) (*berth.DeliveryResult, error) {
	var a *activities.Tickets
	var res berth.DeliveryResult
	if err := workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, ticketOptions), a.DeliverIncidents).Get(ctx, &res); err != nil {
		return nil, err
	}
	return &res, nil
}
