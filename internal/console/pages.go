package console

import (
	"bytes"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// pageNames are the templates under templates/, each rendered inside
// layout.html.
var pageNames = []string{"overview", "topics", "topic", "messages", "groups", "group", "queues", "queue", "login", "error"}

// pageData is what every page gets: the layout's fields and the page's
// own Data.
type pageData struct {
	Title     string
	Nav       string
	Principal string
	AuthOn    bool
	Node      string
	Data      any
}

// templateFuncs are the helpers the templates use. None of them returns
// template.HTML: everything they make is escaped as text.
var templateFuncs = template.FuncMap{
	"bytes": func(n any) string {
		switch v := n.(type) {
		case int64:
			return humanBytes(v)
		case int32:
			return humanBytes(int64(v))
		case int:
			return humanBytes(int64(v))
		}
		return fmt.Sprint(n)
	},
	"sub":  func(a, b int64) int64 { return a - b },
	"join": func(s []string) string { return strings.Join(s, ", ") },
	"msTime": func(ms int64) string {
		if ms <= 0 {
			return ""
		}
		return time.UnixMilli(ms).UTC().Format("2006-01-02 15:04:05.000Z")
	},
	"seconds": func(s float64) string {
		return (time.Duration(s * float64(time.Second))).Round(time.Millisecond).String()
	},
	"pathEscape":  url.PathEscape,
	"queryEscape": url.QueryEscape,
}

// parsePages parses every page with the layout.
func parsePages() (map[string]*template.Template, error) {
	out := map[string]*template.Template{}
	for _, name := range pageNames {
		t, err := template.New(name).Funcs(templateFuncs).ParseFS(assets, "templates/layout.html", "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("console: parse page %s: %w", name, err)
		}
		out[name] = t
	}
	return out, nil
}

// render writes a page; a template that fails is a 500 with nothing of
// the page sent.
func (c *Console) render(w http.ResponseWriter, r *http.Request, code int, name string, data pageData) {
	if data.Node == "" {
		data.Node = c.b.NodeID()
	}
	data.AuthOn = c.authOn()
	var buf bytes.Buffer
	if err := c.pages[name].ExecuteTemplate(&buf, "layout", data); err != nil {
		c.log.Error("console: render page", "page", name, "err", err)
		http.Error(w, "console: page failed to render", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	_, _ = w.Write(buf.Bytes())
}

// renderError shows err as a page.
func (c *Console) renderError(w http.ResponseWriter, r *http.Request, code int, err error) {
	principal := ""
	if id := c.identify(r); id.mechanism != "none" || !c.authOn() {
		principal = id.principal
	}
	c.render(w, r, code, "error", pageData{Title: http.StatusText(code), Principal: principal,
		Data: struct {
			Code    int
			Message string
		}{code, err.Error()}})
}

// humanBytes writes a size in B, KiB, MiB, GiB or TiB.
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 3; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGT"[exp])
}

func (c *Console) pageOverview(cl *call) (string, pageData, error) {
	o, err := cl.overview()
	return "overview", pageData{Title: "Overview", Data: o}, err
}

func (c *Console) pageTopics(cl *call) (string, pageData, error) {
	ts, err := cl.visibleTopics()
	return "topics", pageData{Title: "Topics", Data: ts}, err
}

func (c *Console) pageTopic(cl *call) (string, pageData, error) {
	t, err := cl.topic(cl.r.PathValue("topic"))
	return "topic", pageData{Title: "Topic " + t.Name, Data: t}, err
}

// messagesPage is the message browser's data.
type messagesPage struct {
	Topic      string
	Partitions []int32
	Form       url.Values // the query, to fill the form again
	Result     *Browse
	Error      string
	// More is the query of the next page (resume from where this one
	// stopped), "" when everything was read.
	More string
}

func (c *Console) pageMessages(cl *call) (string, pageData, error) {
	name := cl.r.PathValue("topic")
	t, err := cl.topic(name)
	if err != nil {
		return "", pageData{}, err
	}
	v := cl.r.URL.Query()
	pd := messagesPage{Topic: t.Name, Form: v}
	for _, p := range t.Partitions {
		pd.Partitions = append(pd.Partitions, p.Partition)
	}
	if v.Get("view") == "" {
		v.Set("view", "text")
	}
	if len(v) > 1 || v.Has("from") {
		q, err := c.parseBrowse(v)
		if err == nil {
			q.Wait = 0
			var b Browse
			if b, err = cl.browse(name, q); err == nil {
				pd.Result = &b
				if !b.Complete {
					next := url.Values{}
					for k, vs := range v {
						next[k] = vs
					}
					next.Set("resume", b.Resume)
					pd.More = next.Encode()
				}
			}
		}
		if err != nil {
			if httpStatus(err) == http.StatusForbidden {
				return "", pageData{}, err
			}
			pd.Error = err.Error()
		}
	}
	return "messages", pageData{Title: "Messages of " + t.Name, Data: pd}, nil
}

func (c *Console) pageGroups(cl *call) (string, pageData, error) {
	gs, err := cl.groups()
	return "groups", pageData{Title: "Consumer groups", Data: gs}, err
}

// groupPage is a consumer group's page.
type groupPage struct {
	G      Group
	Topics []string
}

func (c *Console) pageGroup(cl *call) (string, pageData, error) {
	g, err := cl.group(cl.r.PathValue("group"))
	topics := map[string]bool{}
	for _, p := range g.Partitions {
		topics[p.Topic] = true
	}
	return "group", pageData{Title: "Group " + g.Group, Data: groupPage{G: g, Topics: sortedKeys(topics)}}, err
}

func (c *Console) pageQueues(cl *call) (string, pageData, error) {
	return "queues", pageData{Title: "Queue groups", Data: cl.queues()}, nil
}

// queuePage is a queue group's page: its state and a page of its dead
// letters.
type queuePage struct {
	Queue
	Dead   DeadLetters
	Reason string
	Error  string
	More   string
}

func (c *Console) pageQueue(cl *call) (string, pageData, error) {
	topic, group := cl.r.PathValue("topic"), cl.r.PathValue("group")
	q, err := cl.queue(topic, group)
	if err != nil {
		return "", pageData{}, err
	}
	v := cl.r.URL.Query()
	pd := queuePage{Queue: q, Reason: v.Get("reason")}
	bq, err := c.parseBrowse(url.Values{"resume": {v.Get("resume")}, "limit": {"100"}})
	if err == nil {
		pd.Dead, err = cl.deadLetters(topic, group, bq, pd.Reason)
	}
	if err != nil {
		pd.Error = err.Error()
	} else if !pd.Dead.Browse.Complete && pd.Dead.Browse.Resume != "" {
		pd.More = url.Values{"reason": {pd.Reason}, "resume": {pd.Dead.Browse.Resume}}.Encode()
	}
	return "queue", pageData{Title: "Queue group " + group + " on " + topic, Data: pd}, nil
}
