// Package kube is the Kubernetes API protocol: the gateway serves a cluster
// target's API over HTTPS to an agent that authenticates with its OIDC
// token, resolves each request the way the API server does (RequestInfo),
// decides it through the plugin chain and forwards it with the credential
// the gateway holds.
package kube
