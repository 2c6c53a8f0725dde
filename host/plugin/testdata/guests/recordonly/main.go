// A plugin that masks e-mail addresses in the query in the record only,
// and (wrongly) calls it cacheable.
package main

import "github.com/tollgate-dev/tollgate/sdk"

var email sdk.Pattern

func init() {
	var ok bool
	if email, ok = sdk.Compile("email"); !ok {
		panic("email")
	}
	sdk.Subscribe("http.request")
	sdk.HandleEvent(func(ev sdk.Event) sdk.Verdict {
		ev.Field("query")
		sdk.Cacheable()
		email.Mask("query", sdk.Redact|sdk.RecordOnly)
		if email.MaskStream("query", sdk.Redact|sdk.RecordOnly) != -1 {
			return sdk.Deny("mask_stream took the record-only flag")
		}
		return sdk.Allow()
	})
}

func main() {}
