package gitwire

// RefStatus is one ref's line of a report-status: ok, or ng with a reason.
type RefStatus struct {
	Ref    string
	Reason string // empty: ok
}

// Report encodes a receive-pack answer the way git-receive-pack writes
// it: "unpack ok" (or "unpack <err>"), one "ok <ref>" or "ng <ref>
// <reason>" per command, and a flush; inside side-band-64k channel 1
// packets followed by a flush when sideband is set. report-status-v2
// reads the same lines for refused refs and for accepted ones that
// carry no option lines, so one encoding serves both. git prints an ng
// line as "! [remote rejected] <ref> (<reason>)".
func Report(unpackErr string, refs []RefStatus, sideband bool) []byte {
	var inner []byte
	unpack := "unpack ok\n"
	if unpackErr != "" {
		unpack = "unpack " + oneLine(unpackErr, 200) + "\n"
	}
	inner, _ = AppendPkt(inner, []byte(unpack))
	for _, r := range refs {
		line := "ok " + r.Ref + "\n"
		if r.Reason != "" {
			line = "ng " + r.Ref + " " + oneLine(r.Reason, 1000) + "\n"
		}
		inner, _ = AppendPkt(inner, []byte(line))
	}
	inner = AppendFlush(inner)
	if !sideband {
		return inner
	}
	return AppendFlush(Sideband(nil, 1, inner))
}

// Sideband appends data split into side-band-64k packets of channel band
// (1 data, 2 progress, 3 error).
func Sideband(dst []byte, band byte, data []byte) []byte {
	const max = MaxPktData - 1
	for len(data) > 0 {
		n := min(len(data), max)
		chunk := append([]byte{band}, data[:n]...)
		dst, _ = AppendPkt(dst, chunk)
		data = data[n:]
	}
	return dst
}
