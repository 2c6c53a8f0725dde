//go:build !unix

package http

// alive cannot peek without blocking here; the retry in RoundTrip covers
// an upstream that closed an idle connection.
func alive(c *h1Conn) bool { return c.br.Buffered() == 0 }
