// Package ci holds the CI pipeline examples (GitHub Actions and GitLab
// CI, each with its gateway.toml); its test loads each gateway.toml and
// checks its rules against tokens shaped like each provider's.
package ci
