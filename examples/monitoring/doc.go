// Package monitoring holds Tollgate's Prometheus scrape config and alert
// rules (README.md here); its test checks them with promtool, and
// cmd/gateway's TestMetricsAfterTraffic checks that every metric the
// rules name is one a running gateway exports.
package monitoring
