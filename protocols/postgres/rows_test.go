package postgres

import (
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
)

func rowDescBody(t *testing.T, names ...string) []byte {
	t.Helper()
	rd := &pgproto3.RowDescription{}
	for _, n := range names {
		rd.Fields = append(rd.Fields, pgproto3.FieldDescription{Name: []byte(n), DataTypeOID: 25})
	}
	b, err := rd.Encode(nil)
	if err != nil {
		t.Fatal(err)
	}
	return b[5:]
}

// A repeated RowDescription reuses its decoded columns; any other one is
// decoded afresh, so masking by name never sees a previous result's names.
func TestRowDescriptionReuse(t *testing.T) {
	s := &session{}
	a := rowDescBody(t, "id", "owner", "secret")
	d1 := s.rowDescLocked(a)
	if d2 := s.rowDescLocked(append([]byte(nil), a...)); d2 != d1 {
		t.Fatal("the same description was decoded again")
	}
	d3 := s.rowDescLocked(rowDescBody(t, "secret", "id"))
	if d3 == d1 || len(d3.cols) != 2 || d3.cols[0].Name != "secret" || d3.cols[1].Name != "id" {
		t.Fatalf("another description: %+v", d3.cols)
	}
	if d1.cols[2].Name != "secret" || d1.cols[0].Type != "text" {
		t.Fatalf("the first description changed: %+v", d1.cols)
	}
	// The buffer it compares with is its own copy, not the reader's.
	b := rowDescBody(t, "x")
	d4 := s.rowDescLocked(b)
	copy(b, rowDescBody(t, "y"))
	if d5 := s.rowDescLocked(b); d5 == d4 || d5.cols[0].Name != "y" {
		t.Fatalf("a reused read buffer was taken for the same description: %+v", d5.cols)
	}
}
