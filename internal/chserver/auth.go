package chserver

import (
	"bufio"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
)

// User is an account of the server. A read-only user may run statements
// that only read (SELECT, WITH, SHOW, DESCRIBE, EXPLAIN, EXISTS); anything
// else is refused with READONLY (164), as ClickHouse does for a profile
// with readonly = 1 or 2. With Readonly 1 a request that changes a setting
// is refused too; with 2 it may.
type User struct {
	Name     string
	Password string
	Readonly uint8 // 0: writer; 1 or 2: ClickHouse's readonly levels
}

// Error codes of authentication and rights (ErrorCodes.cpp).
const (
	codeReadonly             = 164
	codeAuthenticationFailed = 516
)

// ParseUsers reads a users file: one user per line, "name password rights"
// separated by blanks, rights "write", "readonly" (= "readonly=1": reads,
// no settings) or "readonly=2" (reads, settings allowed); blank lines and
// lines starting with # are ignored. A password of "-" is empty.
func ParseUsers(r io.Reader) ([]User, error) {
	var out []User
	seen := map[string]bool{}
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 3 {
			return nil, fmt.Errorf("users line %d: want \"name password readonly|write\", got %d fields", n, len(f))
		}
		u := User{Name: f[0], Password: f[1]}
		if u.Password == "-" {
			u.Password = ""
		}
		switch f[2] {
		case "readonly", "readonly=1":
			u.Readonly = 1
		case "readonly=2":
			u.Readonly = 2
		case "write":
		default:
			return nil, fmt.Errorf("users line %d: rights %q: want write, readonly (=1) or readonly=2", n, f[2])
		}
		if seen[u.Name] {
			return nil, fmt.Errorf("users line %d: user %q twice", n, u.Name)
		}
		seen[u.Name] = true
		out = append(out, u)
	}
	return out, sc.Err()
}

// credentials reads the user and password of a request the ways
// ClickHouse's HTTP interface accepts them: X-ClickHouse-User/-Key
// headers, HTTP basic authentication, or user/password URL parameters.
// No user means "default".
func credentials(r *http.Request) (user, password string) {
	if u := r.Header.Get("X-ClickHouse-User"); u != "" {
		return u, r.Header.Get("X-ClickHouse-Key")
	}
	if u, p, ok := r.BasicAuth(); ok {
		return u, p
	}
	q := r.URL.Query()
	if u := q.Get("user"); u != "" {
		return u, q.Get("password")
	}
	return "default", ""
}

// authenticate returns the request's user, or AUTHENTICATION_FAILED. With
// no users configured every request is the unrestricted default user.
func (s *Server) authenticate(r *http.Request) (*User, error) {
	if len(s.users) == 0 {
		return &User{Name: "default"}, nil
	}
	name, password := credentials(r)
	u, ok := s.users[name]
	// Compare digests in constant time, also for unknown users, so that
	// timing tells neither which users exist nor how much of a password
	// matched.
	want := sha256.Sum256([]byte(u.Password))
	got := sha256.Sum256([]byte(password))
	if subtle.ConstantTimeCompare(want[:], got[:]) != 1 || !ok {
		return nil, newException(codeAuthenticationFailed, "%s: Authentication failed: password is incorrect, or there is no user with such name. (AUTHENTICATION_FAILED)", name)
	}
	return &u, nil
}

// allowed refuses what a read-only user may not run.
func allowed(u *User, req *request, defaults map[string]string) error {
	if u.Readonly == 0 {
		return nil
	}
	if req.insert || !readOnlyStatement(req.sql) {
		return newException(codeReadonly, "%s: Cannot execute query in readonly mode. (READONLY)", u.Name)
	}
	if u.Readonly == 1 {
		// Like ClickHouse's settings constraints, a setting given its
		// current (default) value is no change.
		for _, k := range slices.Sorted(maps.Keys(req.settings)) {
			if d, ok := defaults[k]; !ok || d != req.settings[k] {
				return newException(codeReadonly, "Cannot modify '%s' setting in readonly mode. (READONLY)", k)
			}
		}
	}
	return nil
}

// readOnlyStatement reports statements that only read. SELECT … INTO
// OUTFILE writes a file on the server and is refused too.
func readOnlyStatement(sql string) bool {
	switch firstKeyword(sql) {
	case "SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXPLAIN", "EXISTS":
	default:
		if !strings.HasPrefix(strings.TrimSpace(sql), "(") {
			return false
		}
	}
	toks := scan(sql, 1<<16)
	for i := 0; i+1 < len(toks); i++ {
		if toks[i].is("INTO") && toks[i+1].is("OUTFILE") {
			return false
		}
	}
	return true
}
