package main

// The protocols this binary serves and `gateway check` validates: each
// registers its config and its listener with gate from init.
import (
	_ "github.com/tollgate-dev/tollgate/protocols/http"
	_ "github.com/tollgate-dev/tollgate/protocols/kube"
	_ "github.com/tollgate-dev/tollgate/protocols/postgres"
	_ "github.com/tollgate-dev/tollgate/protocols/ssh"
)
