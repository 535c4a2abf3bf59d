package console_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/stratalog/strata/internal/console"
	"github.com/stratalog/strata/internal/tlsutil"
)

// xss is a value that runs script if a page inserts it as HTML.
const xss = `<script>alert("xss")</script><img src=x onerror=alert(1)>`

// TestXSSEscaped: an attacker's key, value and header come back escaped
// in the pages and as JSON (not HTML) from the API.
func TestXSSEscaped(t *testing.T) {
	n := startNode(t)
	n.createTopic("evil", 1)
	mustOK(t, "produce", n.post("/api/v1/topics/evil/messages", map[string]any{"key": xss, "value": xss,
		"headers": []map[string]string{{"key": xss, "value": xss}}}), nil)
	for _, view := range []string{"text", "json", "hex"} {
		r := n.get("/console/topics/evil/messages?from=earliest&view=" + view)
		if r.code != http.StatusOK {
			t.Fatalf("%s view: %d", view, r.code)
		}
		for _, raw := range []string{"<script>alert", "<img src=x"} {
			if strings.Contains(r.body, raw) {
				t.Fatalf("%s view: the page holds %q unescaped", view, raw)
			}
		}
		if view != "hex" && !strings.Contains(r.body, "&lt;script&gt;alert(&#34;xss&#34;)&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;") {
			t.Fatalf("%s view: the escaped payload is not on the page", view)
		}
	}
	r := n.get("/api/v1/topics/evil/messages?from=earliest")
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") || r.header.Get("X-Content-Type-Options") != "nosniff" {
		t.Fatalf("API answer: Content-Type %q, X-Content-Type-Options %q", ct, r.header.Get("X-Content-Type-Options"))
	}
	if strings.Contains(r.body, "<script>") {
		t.Fatal("the JSON answer holds <script> unescaped")
	}
	var b console.Browse
	r.json(t, &b)
	if len(b.Records) != 1 || b.Records[0].Value.Text != xss || b.Records[0].Headers[0].Key != xss {
		t.Fatalf("the API does not return the value as it was: %+v", b.Records)
	}
	// A topic name is attacker-controlled too (a client may create one).
	n.createTopic("x_onmouseover.alert", 1)
	if r := n.get("/console/topics/x_onmouseover.alert"); r.code != http.StatusOK || strings.Contains(r.body, `href=x_onmouseover`) {
		t.Fatalf("topic page: %d", r.code)
	}
}

// TestSecurityHeaders: every answer of the console, page, API, static
// file, error or redirect, has the CSP without inline script and
// no-store.
func TestSecurityHeaders(t *testing.T) {
	n := startNode(t)
	for _, path := range []string{"/", "/console/", "/console/topics", "/console/nosuch", "/console/topics/nosuch",
		"/console/static/console.js", "/console/static/console.css", "/console/login", "/api/v1/overview", "/api/v1/nosuch",
		"/api/v1/topics/nosuch"} {
		r := n.get(path)
		csp := r.header.Get("Content-Security-Policy")
		if !strings.Contains(csp, "default-src 'self'") || strings.Contains(csp, "unsafe-inline") ||
			r.header.Get("Cache-Control") != "no-store" || r.header.Get("X-Content-Type-Options") != "nosniff" {
			t.Fatalf("%s (%d): CSP %q, Cache-Control %q, X-Content-Type-Options %q", path, r.code, csp,
				r.header.Get("Cache-Control"), r.header.Get("X-Content-Type-Options"))
		}
		if strings.HasPrefix(path, "/api/") && !strings.HasPrefix(r.header.Get("Content-Type"), "application/json") {
			t.Fatalf("%s: Content-Type %q", path, r.header.Get("Content-Type"))
		}
	}
	r := n.get("/console/")
	if strings.Contains(r.body, "<script>") || strings.Contains(r.body, " style=") || strings.Contains(r.body, " onclick=") {
		t.Fatal("a page has inline script or style, which the CSP blocks")
	}
	if r := n.get("/console/static/console.js"); r.code != http.StatusOK || !strings.Contains(r.header.Get("Content-Type"), "javascript") {
		t.Fatalf("console.js: %d %q", r.code, r.header.Get("Content-Type"))
	}
}

// TestCrossOriginRefused: a mutation from another origin is refused with
// 403 (by Origin, or by Sec-Fetch-Site, cross-site or same-site) and
// changes nothing; a form post (not JSON) is refused; GET cannot mutate.
func TestCrossOriginRefused(t *testing.T) {
	n := startNode(t)
	body := map[string]any{"name": "pwned"}
	for _, hdr := range [][]string{
		{"Origin", "http://evil.example"},
		{"Sec-Fetch-Site", "cross-site"},
		{"Sec-Fetch-Site", "same-site", "Origin", "http://127.0.0.1:1"},
		{"Origin", "null"},
	} {
		r := n.do(n.hc, "POST", "/api/v1/topics", body, hdr...)
		if r.code != http.StatusForbidden || !strings.Contains(r.body, "cross-origin") {
			t.Fatalf("POST with %v: %d %s, want 403", hdr, r.code, r.body)
		}
	}
	req, _ := http.NewRequest("POST", n.base+"/api/v1/topics", strings.NewReader(`{"name":"pwned"}`))
	req.Header.Set("Content-Type", "text/plain") // what a cross-site form can send
	res, err := n.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusBadRequest {
		t.Fatalf("a text/plain POST: %d, want 400", res.StatusCode)
	}
	n.createTopic("keep", 1)
	if r := n.get("/api/v1/topics/keep/delete?confirm=keep"); r.code == http.StatusOK {
		t.Fatalf("GET of a mutation: %d", r.code)
	}
	if r := n.get("/api/v1/topics/keep"); r.code != http.StatusOK {
		t.Fatalf("a GET deleted the topic: %d", r.code)
	}
	if r := n.get("/api/v1/topics/pwned"); r.code != http.StatusNotFound {
		t.Fatalf("a refused request made the topic: %d", r.code)
	}
	r := n.do(n.hc, "POST", "/api/v1/topics", body, "Origin", n.base, "Sec-Fetch-Site", "same-origin")
	if r.code != http.StatusOK {
		t.Fatalf("a same-origin POST: %d %s", r.code, r.body)
	}
}

// TestAuthRequired: with --auth, an anonymous caller is sent to the login
// page (pages) or refused with 401 (API); a login opens a session whose
// cookie is HttpOnly, Secure and SameSite=Strict; the user sees only what
// the ACLs let it describe, browses only what it may consume, and a
// changed password or a logout ends the session. A client certificate
// logs in by itself.
func TestAuthRequired(t *testing.T) {
	n := startSecureNode(t)
	n.createTopic("orders", 1)
	n.createTopic("secret", 1)
	n.produce("secret", 0, "k:classified")
	n.putUser("alice", "alice-pw")

	r := n.get("/console/topics")
	if r.code != http.StatusSeeOther || !strings.HasPrefix(r.header.Get("Location"), "/console/login?next=") {
		t.Fatalf("anonymous page: %d to %q", r.code, r.header.Get("Location"))
	}
	for _, path := range []string{"/api/v1/topics", "/api/v1/topics/secret/messages?from=earliest", "/api/v1/overview"} {
		if r := n.get(path); r.code != http.StatusUnauthorized {
			t.Fatalf("anonymous %s: %d %s, want 401", path, r.code, r.body)
		}
	}
	if r := n.post("/api/v1/topics", map[string]any{"name": "anon"}); r.code != http.StatusUnauthorized {
		t.Fatalf("anonymous create: %d", r.code)
	}
	if r := n.login(n.hc, "alice", "wrong"); r.code != http.StatusUnauthorized || len(r.header.Values("Set-Cookie")) != 0 {
		t.Fatalf("wrong password: %d, cookies %v", r.code, r.header.Values("Set-Cookie"))
	}
	if r := n.login(n.hc, "mallory", "alice-pw"); r.code != http.StatusUnauthorized {
		t.Fatalf("unknown user: %d", r.code)
	}
	r = n.login(n.hc, "alice", "alice-pw")
	ck := r.header.Get("Set-Cookie")
	if r.code != http.StatusSeeOther || r.header.Get("Location") != "/console/topics" || !strings.HasPrefix(ck, "__Host-strata_console=") ||
		!strings.Contains(ck, "HttpOnly") || !strings.Contains(ck, "Secure") || !strings.Contains(ck, "SameSite=Strict") {
		t.Fatalf("login: %d to %q, cookie %q", r.code, r.header.Get("Location"), ck)
	}
	var who console.WhoAmI
	mustOK(t, "whoami", n.get("/api/v1/whoami"), &who)
	if who.Principal != "user:alice" || who.Mechanism != "password" || !who.Auth {
		t.Fatalf("whoami %+v", who)
	}
	var list struct{ Topics []console.Topic }
	mustOK(t, "alice's topics", n.get("/api/v1/topics"), &list)
	if len(list.Topics) != 0 {
		t.Fatalf("alice sees %d topics without an ACL", len(list.Topics))
	}
	for _, path := range []string{"/api/v1/topics/secret", "/api/v1/topics/secret/messages?from=earliest", "/api/v1/overview",
		"/api/v1/topics/nosuch", "/console/topics/secret/messages?from=earliest"} {
		if r := n.get(path); r.code != http.StatusForbidden || strings.Contains(r.body, "classified") {
			t.Fatalf("alice %s: %d, want 403", path, r.code)
		}
	}
	if r := n.get("/console/topics"); r.code != http.StatusOK || strings.Contains(r.body, "secret") || strings.Contains(r.body, "orders") {
		t.Fatalf("alice's topics page: %d (lists a topic she may not describe?)", r.code)
	}

	n.allow("user:alice", "describe", "topic", "orders")
	mustOK(t, "alice's topics with describe", n.get("/api/v1/topics"), &list)
	if len(list.Topics) != 1 || list.Topics[0].Name != "orders" {
		t.Fatalf("alice sees %+v, want orders only", list.Topics)
	}
	if r := n.get("/api/v1/topics/orders/messages?from=earliest"); r.code != http.StatusForbidden {
		t.Fatalf("browse with describe only: %d, want 403", r.code)
	}
	if r := n.post("/api/v1/topics/orders/messages", map[string]any{"value": "x"}); r.code != http.StatusForbidden {
		t.Fatalf("produce with describe only: %d, want 403", r.code)
	}
	n.allow("user:alice", "consume", "topic", "orders")
	mustOK(t, "browse with consume", n.get("/api/v1/topics/orders/messages?from=earliest"), nil)

	// A client certificate is a login of its own.
	admin := newClient(n.tlsConfig(n.ca.Client(t, "admin")))
	mustOK(t, "admin's topics", n.do(admin, "GET", "/api/v1/topics", nil), &list)
	if len(list.Topics) != 2 {
		t.Fatalf("the admin sees %d topics, want 2", len(list.Topics))
	}
	var b console.Browse
	mustOK(t, "admin browses secret", n.do(admin, "GET", "/api/v1/topics/secret/messages?from=earliest", nil), &b)
	if len(b.Records) != 1 {
		t.Fatalf("admin reads %d records of secret", len(b.Records))
	}
	nobody := newClient(n.tlsConfig(n.ca.Client(t, "nobody")))
	if r := n.do(nobody, "GET", "/api/v1/topics/secret", nil); r.code != http.StatusForbidden {
		t.Fatalf("a certificate without ACLs: %d, want 403", r.code)
	}

	// A new password ends the sessions opened with the old one.
	n.putUserUpdate("alice", "new-pw")
	if r := n.get("/api/v1/topics"); r.code != http.StatusUnauthorized {
		t.Fatalf("after a password change: %d, want 401", r.code)
	}
	n.login(n.hc, "alice", "new-pw")
	mustOK(t, "after a new login", n.get("/api/v1/topics"), nil)
	if r := n.post("/console/logout", nil); r.code != http.StatusSeeOther {
		t.Fatalf("logout: %d", r.code)
	}
	if r := n.get("/api/v1/topics"); r.code != http.StatusUnauthorized {
		t.Fatalf("after logout: %d, want 401", r.code)
	}
}

// TestLoginRedirectStaysHere: the page a login returns to is a console
// path, never another site.
func TestLoginRedirectStaysHere(t *testing.T) {
	n := startSecureNode(t)
	n.putUser("bob", "bob-pw")
	for next, want := range map[string]string{
		"/console/topics/x?from=1": "/console/topics/x?from=1",
		"//evil.example/":          "/console/",
		"https://evil.example/":    "/console/",
		"/\\evil.example":          "/console/",
		"/api/v1/topics":           "/console/",
	} {
		form := url.Values{"user": {"bob"}, "password": {"bob-pw"}, "next": {next}}
		req, _ := http.NewRequest("POST", n.base+"/console/login", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		res, err := newClient(n.tlsConfig(tlsutil.Files{})).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if got := res.Header.Get("Location"); got != want {
			t.Errorf("next %q: redirected to %q, want %q", next, got, want)
		}
	}
}
