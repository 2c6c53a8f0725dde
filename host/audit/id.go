package audit

import (
	"crypto/rand"
	"encoding/hex"
)

// NewID returns a random UUID (version 4), the form the audit schema
// stores for event, session and approval IDs.
func NewID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return FormatID(b)
}

// FormatID marks 16 random bytes as a version 4 UUID and formats them,
// for callers with their own source of randomness (a per-session
// generator saves a system call per row).
func FormatID(b [16]byte) string {
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	var out [36]byte
	hex.Encode(out[0:8], b[0:4])
	out[8] = '-'
	hex.Encode(out[9:13], b[4:6])
	out[13] = '-'
	hex.Encode(out[14:18], b[6:8])
	out[18] = '-'
	hex.Encode(out[19:23], b[8:10])
	out[23] = '-'
	hex.Encode(out[24:], b[10:16])
	return string(out[:])
}

// IsID reports whether s is a UUID in its text form (8-4-4-4-12 hex
// digits, either case), as every ID in the trail is.
func IsID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
				return false
			}
		}
	}
	return true
}
