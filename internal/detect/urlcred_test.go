package detect

import (
	"encoding/base64"
	"math/rand"
	"strings"
	"testing"
)

func TestURLCredentials(t *testing.T) {
	basic := base64.StdEncoding.EncodeToString([]byte("alice:s3cr3t!"))
	basicRaw := strings.TrimRight(base64.StdEncoding.EncodeToString([]byte("bob:pw")), "=")
	long := strings.Repeat("x", urlUserMax+1)
	run(t, KindURLCredentials, []tcase{
		{"DATABASE_URL=postgres://app:hunter2@db.internal:5432/app", []string{"hunter2"}},
		{"postgresql://app:p%40ss@10.0.0.7/app?sslmode=require", []string{"p%40ss"}},
		{"mysql://root:toor@mysql:3306/shop", []string{"toor"}},
		{"redis://default:s3cret@cache:6379", []string{"s3cret"}},
		{"rediss://:onlypass@cache:6380/0", []string{"onlypass"}},
		{"mongodb+srv://u:p4ss@cluster0.mongodb.net/db", []string{"p4ss"}},
		{"mongodb://u:pw@h1:27017,h2:27017/db?replicaSet=rs0", []string{"pw"}},
		{"amqp://guest:guest@rabbit//", []string{"guest"}},
		{"amqps://svc:a:b@c@mq.example.com", []string{"a:b@c"}}, // the last '@' ends it
		{`"url": "jdbc:mysql://u:pw@h/db"`, []string{"pw"}},
		{"ftp://anon:x@files", []string{"x"}},
		{"https://example.com:8443/path", nil}, // a port, no userinfo
		{"https://medium.com/@user", nil},      // '@' in the path
		{"redis://default@cache:6379", nil},    // no password
		{"redis://default:@cache:6379", nil},   // empty password
		{"redis://default:s3cret@", nil},       // no host
		{"://u:p@h", nil},                      // no scheme
		{"x://" + long + ":pw@h", nil},         // user over the bound
		{"postgres://u:pw@h/db?next=a@b", []string{"pw"}},
		{"Authorization: Basic " + basic + "\r\n", []string{basic}},
		{"proxy-authorization: basic " + basicRaw, []string{basicRaw}},
		{`-H 'Authorization: BASIC ` + basic + `'`, []string{basic}},
		{"Basic usage of the API", nil},
		{"Basic " + base64.StdEncoding.EncodeToString([]byte("no colon here")), nil},
		{"Basic " + base64.StdEncoding.EncodeToString([]byte{0, 1, ':', 0xff}), nil},
		{"VeryBasic " + basic, nil},
	})
}

// The password alone is masked: user and host stay readable.
func TestURLCredentialsMaskOnlyPassword(t *testing.T) {
	d, _ := Builtin(KindURLCredentials)
	set := NewSet(d)
	in := []byte("redis://default:s3cret@cache:6379 and postgres://app:hunter2@db.internal/app")
	got := string(wholeMask(set, in, Redact, nil))
	want := "redis://default:[REDACTED:url_credentials]@cache:6379 and postgres://app:[REDACTED:url_credentials]@db.internal/app"
	if got != want {
		t.Fatalf("got  %q\nwant %q", got, want)
	}
	r := rand.New(rand.NewSource(9))
	checkChunkings(t, set, append(in, " Authorization: Basic dXNlcjpwYXNz\n"+
		"x mongodb+srv://u:p4ss@cluster0/db, amqps://svc:a:b@c@mq"...), r, 200)
}
