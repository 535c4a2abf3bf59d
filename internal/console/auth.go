package console

import (
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/stratalog/strata/internal/auth"
	"github.com/stratalog/strata/internal/tlsutil"
)

// cookieName is the session cookie's name over plain HTTP; over TLS the
// __Host- prefix makes the browser insist on Secure, Path=/ and no Domain.
const (
	cookieName       = "strata_console"
	secureCookieName = "__Host-strata_console"
)

// auditPerSecond bounds the failed-login and denial lines the console
// writes to the audit log.
const auditPerSecond = 50

// identity is who a request comes from.
type identity struct {
	principal string
	mechanism string // mtls, password (a session) or none
}

// identify returns the caller: a verified client certificate, else an
// open session whose user still has the credential it logged in with.
func (c *Console) identify(r *http.Request) identity {
	if r.TLS != nil && len(r.TLS.VerifiedChains) > 0 && len(r.TLS.VerifiedChains[0]) > 0 {
		return identity{principal: tlsutil.Principal(r.TLS.VerifiedChains[0][0]), mechanism: "mtls"}
	}
	if ck, err := r.Cookie(cookieNameFor(r)); err == nil && ck.Value != "" {
		if s, ok := c.sessions.get(ck.Value, time.Now()); ok {
			if fp, found := c.credentialFingerprint(s.user); found && fp == s.cred {
				return identity{principal: "user:" + s.user, mechanism: "password"}
			}
			c.sessions.drop(ck.Value) // the user was deleted or changed password
		}
	}
	return identity{principal: auth.Anonymous, mechanism: "none"}
}

func cookieNameFor(r *http.Request) string {
	if r.TLS != nil {
		return secureCookieName
	}
	return cookieName
}

// credentialFingerprint identifies the user's current credentials: a
// session ends when they change.
func (c *Console) credentialFingerprint(user string) ([32]byte, bool) {
	h := sha256.New()
	found := false
	for _, m := range []auth.Mechanism{auth.ScramSHA256, auth.ScramSHA512} {
		if cred, ok := c.b.UserCredential(user, m); ok {
			found = true
			fmt.Fprintf(h, "%s:%x:%d:%x;", m, cred.Salt, cred.Iterations, cred.StoredKey)
		}
	}
	var fp [32]byte
	copy(fp[:], h.Sum(nil))
	return fp, found
}

// fakeCredential is checked for unknown users, so that a login costs the
// same whether or not the user exists.
func fakeCredential() (auth.Credential, error) {
	pw := make([]byte, 16)
	_, _ = rand.Read(pw)
	return auth.NewCredential(auth.ScramSHA256, fmt.Sprintf("%x", pw), auth.DefaultIterations)
}

// checkPassword verifies a password against the user's SCRAM credential
// (SHA-256, else SHA-512), as the gRPC service does. At most GOMAXPROCS
// checks run at once; more are refused.
func (c *Console) checkPassword(user, pass string) (bool, error) {
	select {
	case c.logins <- struct{}{}:
		defer func() { <-c.logins }()
	default:
		return false, fmt.Errorf("%w: too many logins in progress; retry", ErrForbidden)
	}
	cred, found := c.b.UserCredential(user, auth.ScramSHA256)
	if !found {
		cred, found = c.b.UserCredential(user, auth.ScramSHA512)
	}
	if !found {
		cred = c.fake
	}
	return cred.Verify(pass) && found, nil
}

// loginPage shows the login form.
func (c *Console) loginPage(w http.ResponseWriter, r *http.Request) {
	c.render(w, r, http.StatusOK, "login", pageData{Title: "Log in", Data: loginData{Next: safeNext(r.URL.Query().Get("next"))}})
}

type loginData struct {
	Next  string
	User  string
	Error string
}

// login checks a user name and password (a form POST) and opens a
// session.
func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		c.fail(w, r, fmt.Errorf("%w: %v", ErrBadRequest, err))
		return
	}
	user, pass, next := r.PostForm.Get("user"), r.PostForm.Get("password"), safeNext(r.PostForm.Get("next"))
	if !c.authOn() {
		http.Redirect(w, r, next, http.StatusSeeOther)
		return
	}
	ok, err := c.checkPassword(user, pass)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	if !ok || user == "" {
		if c.auditLim.allow(auditPerSecond) {
			name := user
			if len(name) > 64 {
				name = name[:64] + "..."
			}
			c.audit().LoginFailed("user:"+name, "password", r.RemoteAddr, "console: unknown user or wrong password")
		}
		c.render(w, r, http.StatusUnauthorized, "login", pageData{Title: "Log in",
			Data: loginData{Next: next, User: user, Error: "Unknown user or wrong password."}})
		return
	}
	fp, _ := c.credentialFingerprint(user)
	token := c.sessions.create(user, fp, time.Now())
	http.SetCookie(w, &http.Cookie{Name: cookieNameFor(r), Value: token, Path: "/", HttpOnly: true,
		Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode, MaxAge: int(c.cfg.SessionTTL / time.Second)})
	http.Redirect(w, r, next, http.StatusSeeOther)
}

// logout closes the caller's session.
func (c *Console) logout(w http.ResponseWriter, r *http.Request) {
	if ck, err := r.Cookie(cookieNameFor(r)); err == nil {
		c.sessions.drop(ck.Value)
	}
	http.SetCookie(w, &http.Cookie{Name: cookieNameFor(r), Value: "", Path: "/", HttpOnly: true,
		Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode, MaxAge: -1})
	http.Redirect(w, r, "/console/login", http.StatusSeeOther)
}

// safeNext keeps a redirect target on this site: a path of the console,
// never another host ("//evil", "/\evil", "https://…").
func safeNext(next string) string {
	u, err := url.Parse(next)
	if next == "" || err != nil || u.Scheme != "" || u.Host != "" || !strings.HasPrefix(next, "/console/") ||
		strings.ContainsAny(next, "\\\r\n") {
		return "/console/"
	}
	return next
}

// loginRedirect sends an anonymous page request to the login form.
func loginRedirect(w http.ResponseWriter, r *http.Request) {
	http.Redirect(w, r, "/console/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
}
