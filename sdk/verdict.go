//go:build wasip1

package sdk

// Verdict is what a handler decides. Rewrites need no verdict of their
// own: changing a field (SetField, Mask) makes the verdict a rewrite.
type Verdict struct {
	action    int32
	reason    string
	approvers []string
}

// Action codes of ABI v1.
const (
	actionAllow int32 = 0
	actionDeny  int32 = 2
	actionHold  int32 = 3
)

// Allow lets the event through (with any field changes made).
func Allow() Verdict { return Verdict{action: actionAllow} }

// Deny refuses the event; the reason reaches the client and the audit row.
func Deny(reason string) Verdict { return Verdict{action: actionDeny, reason: reason} }

// Hold asks a human in one of the groups to approve the event first.
func Hold(reason string, approverGroups ...string) Verdict {
	return Verdict{action: actionHold, reason: reason, approvers: approverGroups}
}

var (
	eventHandler func(Event) Verdict
	rowsHandler  func(Event, Rows) Verdict
)

// HandleEvent sets the handler for events.
func HandleEvent(h func(Event) Verdict) { eventHandler = h }

// HandleRows sets the handler for result-row batches ("pg.rows").
func HandleRows(h func(Event, Rows) Verdict) { rowsHandler = h }

func finish(v Verdict) int32 {
	if v.reason != "" {
		hostSetReason(sptr(v.reason), uint32(len(v.reason)))
	}
	for _, g := range v.approvers {
		hostAddApprover(sptr(g), uint32(len(g)))
	}
	return v.action
}

//go:wasmexport tollgate_abi_v1
func abiV1() {}

//go:wasmexport tollgate_on_event
func onEvent() int32 {
	if eventHandler == nil {
		return actionAllow
	}
	return finish(eventHandler(Event{}))
}

//go:wasmexport tollgate_on_rows
func onRows() int32 {
	if rowsHandler == nil {
		return actionAllow
	}
	return finish(rowsHandler(Event{}, Rows{}))
}
