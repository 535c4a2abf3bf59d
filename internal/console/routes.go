package console

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/stratalog/strata/internal/auth"
)

// call is one request being served, with its caller.
type call struct {
	c   *Console
	w   http.ResponseWriter
	r   *http.Request
	ctx context.Context
	id  identity
}

// apiFunc serves a JSON API call.
type apiFunc func(cl *call) (any, error)

// pageFunc serves a page: the template's name and its data.
type pageFunc func(cl *call) (string, pageData, error)

// maxBodyBytes bounds a request body (a produced test message included).
const maxBodyBytes = 4 << 20

// routes registers the pages and the API on the console's own mux.
func (c *Console) routes() {
	api := func(pattern string, f apiFunc) { c.mux.Handle(pattern, c.apiHandler(f)) }
	page := func(pattern, nav string, f pageFunc) { c.mux.Handle(pattern, c.pageHandler(nav, f)) }

	api("GET /api/v1/whoami", c.apiWhoAmI)
	api("GET /api/v1/overview", c.apiOverview)
	api("GET /api/v1/topics", c.apiTopics)
	api("POST /api/v1/topics", c.apiCreateTopic)
	api("GET /api/v1/topics/{topic}", c.apiTopic)
	api("POST /api/v1/topics/{topic}/delete", c.apiDeleteTopic)
	api("GET /api/v1/topics/{topic}/messages", c.apiBrowse)
	api("POST /api/v1/topics/{topic}/messages", c.apiProduce)
	api("GET /api/v1/groups", c.apiGroups)
	api("GET /api/v1/groups/{group}", c.apiGroup)
	api("POST /api/v1/groups/{group}/reset", c.apiResetGroup)
	api("GET /api/v1/queues", c.apiQueues)
	api("GET /api/v1/queues/{topic}/{group}", c.apiQueue)
	api("GET /api/v1/queues/{topic}/{group}/dead-letters", c.apiDeadLetters)
	api("POST /api/v1/queues/{topic}/{group}/redrive", c.apiRedrive)
	c.mux.HandleFunc("/api/v1/", func(w http.ResponseWriter, r *http.Request) {
		c.fail(w, r, fmt.Errorf("%w: no such API call: %s %s", ErrNotFound, r.Method, r.URL.Path))
	})

	page("GET /console/{$}", "overview", c.pageOverview)
	page("GET /console/topics", "topics", c.pageTopics)
	page("GET /console/topics/{topic}", "topics", c.pageTopic)
	page("GET /console/topics/{topic}/messages", "topics", c.pageMessages)
	page("GET /console/groups", "groups", c.pageGroups)
	page("GET /console/groups/{group}", "groups", c.pageGroup)
	page("GET /console/queues", "queues", c.pageQueues)
	page("GET /console/queues/{topic}/{group}", "queues", c.pageQueue)
	c.mux.HandleFunc("GET /console/login", c.loginPage)
	c.mux.HandleFunc("POST /console/login", c.login)
	c.mux.HandleFunc("POST /console/logout", c.logout)
	c.mux.Handle("GET /console/static/", http.StripPrefix("/console/static/", http.FileServerFS(staticFS())))
	c.mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/console/", http.StatusSeeOther)
	})
	c.mux.HandleFunc("/console/", func(w http.ResponseWriter, r *http.Request) {
		c.fail(w, r, fmt.Errorf("%w: no such page: %s", ErrNotFound, r.URL.Path))
	})
}

func isAPI(r *http.Request) bool { return strings.HasPrefix(r.URL.Path, "/api/") }

// begin identifies the caller; with auth on, an anonymous caller is sent
// to the login page (pages) or refused with 401 (the API).
func (c *Console) begin(w http.ResponseWriter, r *http.Request) (*call, context.CancelFunc, bool) {
	id := c.identify(r)
	if c.authOn() && id.principal == auth.Anonymous {
		if isAPI(r) {
			c.fail(w, r, fmt.Errorf("%w: log in at /console/login or present a client certificate", ErrUnauthenticated))
		} else {
			loginRedirect(w, r)
		}
		return nil, nil, false
	}
	ctx, cancel := c.requestContext(r, 0)
	cl := &call{c: c, w: w, r: r, ctx: ctx, id: id}
	return cl, cancel, true
}

func (c *Console) apiHandler(f apiFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			// A JSON body only: an HTML form cannot send one, so a
			// cross-site form post fails here too.
			if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
				c.fail(w, r, fmt.Errorf("%w: send the request as Content-Type: application/json", ErrBadRequest))
				return
			}
			r.Body = http.MaxBytesReader(w, r.Body, maxBodyBytes)
		}
		cl, done, ok := c.begin(w, r)
		if !ok {
			return
		}
		defer done()
		v, err := f(cl)
		if err != nil {
			c.fail(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, v)
	})
}

func (c *Console) pageHandler(nav string, f pageFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cl, done, ok := c.begin(w, r)
		if !ok {
			return
		}
		defer done()
		name, data, err := f(cl)
		if err != nil {
			c.fail(w, r, err)
			return
		}
		data.Nav, data.Principal, data.AuthOn, data.Node = nav, cl.id.principal, c.authOn(), c.b.NodeID()
		c.render(w, r, http.StatusOK, name, data)
	})
}

// decode reads the JSON body of a call into v, refusing unknown fields.
func (cl *call) decode(v any) error {
	dec := json.NewDecoder(cl.r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: request body: %v", ErrBadRequest, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: request body: more than one JSON value", ErrBadRequest)
	}
	return nil
}

// allowed reports whether the caller may do op on a resource, with the
// node's authorizer (always, with auth off).
func (cl *call) allowed(op auth.Operation, res auth.ResourceType, name string) bool {
	return cl.c.sec.Allowed(cl.id.principal, op, res, name)
}

// require fails with ErrForbidden, audited, when the caller may not do op
// on a resource. As the gRPC service, it answers the same whether or not
// the resource exists.
func (cl *call) require(op auth.Operation, res auth.ResourceType, name string) error {
	if cl.allowed(op, res, name) {
		return nil
	}
	if cl.c.auditLim.allow(auditPerSecond) {
		cl.c.audit().Denied(cl.id.principal, string(op), string(res), name, "console:"+cl.r.Method+" "+cl.r.URL.Path, cl.r.RemoteAddr)
	}
	return fmt.Errorf("%w: %s may not %s %s %q", ErrForbidden, cl.id.principal, op, res, name)
}

// adminChange records a change the caller made (or tried) in the audit
// log, as the gRPC service does for its admin calls.
func (cl *call) adminChange(action, target string, err error) {
	if cl.c.sec != nil && cl.c.sec.Audit != nil {
		cl.c.sec.Audit.AdminChange(cl.id.principal, action, target, cl.r.RemoteAddr, err)
	}
}

// queueResource is a queue group's resource name in ACLs.
func queueResource(topic, group string) string { return topic + "/" + group }

// clusterResource is the name of the one cluster resource in ACLs.
const clusterResource = auth.ClusterName
