// A masking plugin for the host's tests: host-side patterns over a field
// and over row batches.
package main

import "github.com/tollgate-dev/tollgate/sdk"

var email, digits sdk.Pattern

func init() {
	var ok bool
	if email, ok = sdk.Compile("email"); !ok {
		panic("email detector")
	}
	if digits, ok = sdk.Compile(`re:\b\d{4}-\d{4}\b`); !ok {
		panic("regexp")
	}
	sdk.Subscribe("http.request")
	sdk.Subscribe("pg.rows")
	sdk.SubscribeRowsWithColumn("e*l")
	sdk.SubscribeRowsWithColumn("secret")
	sdk.HandleEvent(func(ev sdk.Event) sdk.Verdict {
		if n := email.Mask("query", sdk.Partial); n > 0 {
			sdk.Annotate("masked_emails", "yes")
		}
		if digits.Count("query") > 0 {
			return sdk.Deny("card-like numbers in the query")
		}
		return sdk.Allow()
	})
	sdk.HandleRows(func(ev sdk.Event, rows sdk.Rows) sdk.Verdict {
		sdk.Annotate("rows_called", "yes")
		for i, c := range rows.Columns() {
			if c == "email" {
				rows.MaskColumn(email, i, sdk.Redact)
			}
			if c == "secret" {
				for r := 0; r < rows.Len(); r++ {
					rows.SetNull(r, i)
				}
			}
		}
		return sdk.Allow()
	})
}

func main() {}
