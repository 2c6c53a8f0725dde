// Package ssh is Tollgate's SSH protocol.
package ssh
