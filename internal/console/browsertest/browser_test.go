package browsertest

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// xss runs script if a page inserts it as HTML.
const xss = `<img src=x onerror=alert(1)><script>alert(2)</script>`

// chromium returns the browser to drive: CHROMIUM, else Debian's
// chromium on the PATH. Without one the test skips, or fails under CI.
func chromium(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("no chromium on the PATH: `make tools` installs Debian's chromium package")
	}
	t.Skip("no chromium on the PATH (make tools installs it); skipped outside CI")
	return ""
}

// browser starts headless Chromium and counts the JavaScript dialogs
// (alert, confirm, prompt) any page opens.
func browser(t *testing.T) (context.Context, *atomic.Int32) {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chromium(t)),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.WindowSize(1280, 900))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	dialogs := &atomic.Int32{}
	if err := chromedp.Listen(ctx, func(ev any) {
		switch ev.(type) {
		case *page.EventJavascriptDialogOpening, page.EventJavascriptDialogOpening:
			dialogs.Add(1)
		}
	}); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx, dialogs
}

// step runs actions with a deadline.
func step(t *testing.T, ctx context.Context, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if err := chromedp.Do(sctx, actions...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// eval evaluates a JavaScript expression in the page.
func eval[T any](t *testing.T, ctx context.Context, js string, opts ...chromedp.EvaluateOption) T {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(sctx, chromedp.Evaluate[T](js, opts...))
	if err != nil {
		t.Fatalf("evaluate %s: %v", js, err)
	}
	return v
}

// screenshot saves the page as name.png in STRATA_SCREENSHOTS, if set.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	dir := os.Getenv("STRATA_SCREENSHOTS")
	if dir == "" {
		return
	}
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	png, err := chromedp.Run(sctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestConsole drives the console of a real 3-node cluster in Chromium,
// each check on another node than the data was written through: the
// overview shows the 3 nodes, a key search finds its record, an XSS value
// renders as text (also in the live tail), a redrive moves exactly N dead
// letters back, and a cross-origin POST is refused.
func TestConsole(t *testing.T) {
	ctx, dialogs := browser(t) // skips early without chromium
	nodes := startCluster(t)
	n1, n2, n3 := nodes[0], nodes[1], nodes[2]

	n1.cli(t, "", "topic", "create", "orders", "--partitions", "3", "--replication-factor", "3")
	var in strings.Builder
	for i := 1; i <= 30; i++ {
		fmt.Fprintf(&in, "customer-%d:{\"order\":%d,\"total\":%d.50}\n", i, i, i*7)
	}
	fmt.Fprintf(&in, "xss-1:%s\n", xss)
	n2.cli(t, in.String(), "produce", "orders", "--key-separator", ":", "--header", "source=browsertest")

	n1.cli(t, "", "topic", "create", "work", "--partitions", "2", "--replication-factor", "3")
	n1.cli(t, "", "queue", "create", "workers", "--topic", "work", "--max-deliveries", "1",
		"--ack-timeout", "2s", "--backoff-initial", "100ms", "--backoff-max", "100ms")
	in.Reset()
	for i := range 10 {
		fmt.Fprintf(&in, "job-%d:payload %d\n", i, i)
	}
	n2.cli(t, in.String(), "produce", "work", "--key-separator", ":")
	n3.cli(t, "", "queue", "receive", "workers", "--topic", "work", "--max", "10", "--nack", "--timeout", "3s")
	waitFor(t, 60*time.Second, "10 dead letters", func() string {
		var dl struct {
			DeadLetters []struct{} `json:"dead_letters"`
		}
		if err := getJSON(n1.HTTP+"/api/v1/queues/work/workers/dead-letters", &dl); err != nil {
			return err.Error()
		}
		if len(dl.DeadLetters) != 10 {
			return fmt.Sprintf("%d dead letters", len(dl.DeadLetters))
		}
		return ""
	})

	t.Run("overview shows 3 nodes", func(t *testing.T) {
		step(t, ctx, "open the overview", chromedp.Navigate(n2.HTTP+"/console/"), chromedp.WaitVisible(chromedp.CSS("#nodes")))
		if n := eval[int](t, ctx, `document.querySelectorAll("#nodes tbody tr.node").length`); n != 3 {
			t.Fatalf("the overview lists %d nodes, want 3", n)
		}
		text := eval[string](t, ctx, `document.querySelector("#nodes").innerText`)
		for _, id := range []string{"n1", "n2", "n3"} {
			if !strings.Contains(text, id) {
				t.Fatalf("the overview lacks node %s:\n%s", id, text)
			}
		}
		screenshot(t, ctx, "overview")
		step(t, ctx, "open the topic", chromedp.Navigate(n1.HTTP+"/console/topics/orders"), chromedp.WaitVisible(chromedp.CSS("#partitions")))
		if n := eval[int](t, ctx, `document.querySelectorAll("#partitions tbody tr").length`); n != 3 {
			t.Fatalf("the topic page lists %d partitions, want 3", n)
		}
		screenshot(t, ctx, "topic")
	})

	t.Run("key search finds its record", func(t *testing.T) {
		step(t, ctx, "browse", chromedp.Navigate(n3.HTTP+"/console/topics/orders/messages?from=earliest&view=json&limit=8"),
			chromedp.WaitVisible(chromedp.CSS("#found")))
		screenshot(t, ctx, "messages")
		step(t, ctx, "search by key",
			chromedp.SetValue(chromedp.CSS(`select[name="from"]`), "earliest"),
			chromedp.SetValue(chromedp.CSS(`input[name="limit"]`), ""),
			chromedp.SetValue(chromedp.CSS("#filter-key"), "customer-17"),
			chromedp.Click(chromedp.CSS("#search")),
			chromedp.WaitVisible(chromedp.CSS("#found")))
		waitFor(t, 30*time.Second, "the search result", func() string {
			if u := eval[string](t, ctx, `location.search`); !strings.Contains(u, "key=customer-17") {
				return "still on " + u
			}
			return ""
		})
		if found := eval[string](t, ctx, `document.querySelector("#found").textContent`); found != "1" {
			t.Fatalf("found %s records, want 1", found)
		}
		key := eval[string](t, ctx, `document.querySelector("#messages tr.message td.key").textContent`)
		value := eval[string](t, ctx, `document.querySelector("#messages tr.message td.value").textContent`)
		if key != "customer-17" || !strings.Contains(value, `"order": 17`) {
			t.Fatalf("found key %q value %q", key, value)
		}
	})

	t.Run("XSS value renders as text", func(t *testing.T) {
		step(t, ctx, "browse the payload", chromedp.Navigate(n2.HTTP+"/console/topics/orders/messages?from=earliest&key=xss-1"),
			chromedp.WaitVisible(chromedp.CSS("#found")))
		value := eval[string](t, ctx, `document.querySelector("#messages tr.message td.value pre").textContent`)
		if value != xss {
			t.Fatalf("the value cell holds %q, want the payload as text %q", value, xss)
		}
		if n := eval[int](t, ctx, `document.querySelectorAll("#messages img, #messages script").length`); n != 0 {
			t.Fatalf("the payload made %d elements", n)
		}
		// The live tail renders what arrives with the page's script.
		step(t, ctx, "start the tail", chromedp.Click(chromedp.CSS("#tail-start")), chromedp.WaitVisible(chromedp.CSS("#tail-stop")))
		waitFor(t, 10*time.Second, "the tail polling", func() string {
			if s := eval[string](t, ctx, `document.querySelector("#tail-status").textContent`); !strings.HasPrefix(s, "tailing") {
				return s
			}
			return ""
		})
		n3.cli(t, "xss-1:"+xss+" tailed\n", "produce", "orders", "--key-separator", ":")
		waitFor(t, 30*time.Second, "the tailed record", func() string {
			if n := eval[int](t, ctx, `document.querySelectorAll("#messages tr.tailed").length`); n != 1 {
				return fmt.Sprintf("%d tailed rows", n)
			}
			return ""
		})
		tailed := eval[string](t, ctx, `document.querySelector("#messages tr.tailed td:nth-child(5) pre").textContent`)
		if tailed != xss+" tailed" {
			t.Fatalf("the tailed value cell holds %q", tailed)
		}
		if n := eval[int](t, ctx, `document.querySelectorAll("#messages img, #messages script").length`); n != 0 {
			t.Fatalf("the tailed payload made %d elements", n)
		}
		step(t, ctx, "stop the tail", chromedp.Click(chromedp.CSS("#tail-stop")))
		if d := dialogs.Load(); d != 0 {
			t.Fatalf("%d JavaScript dialogs opened", d)
		}
	})

	t.Run("redrive moves N dead letters back", func(t *testing.T) {
		ends := func() int64 {
			var tp struct {
				Partitions []struct {
					End int64 `json:"end_offset"`
				} `json:"partitions"`
			}
			if err := getJSON(n1.HTTP+"/api/v1/topics/work", &tp); err != nil {
				t.Fatal(err)
			}
			var sum int64
			for _, p := range tp.Partitions {
				sum += p.End
			}
			return sum
		}
		if e := ends(); e != 10 {
			t.Fatalf("work holds %d records before the redrive, want 10", e)
		}
		step(t, ctx, "open the queue group", chromedp.Navigate(n3.HTTP+"/console/queues/work/workers"),
			chromedp.WaitVisible(chromedp.CSS("#dead-letters")))
		if n := eval[string](t, ctx, `document.querySelector("#dead-count").textContent`); n != "10" {
			t.Fatalf("the page shows %s dead letters, want 10", n)
		}
		screenshot(t, ctx, "queue")
		step(t, ctx, "ask for a redrive of 4",
			chromedp.SetValue(chromedp.CSS("#redrive-max"), "4"),
			chromedp.Click(chromedp.CSS("#redrive-submit")),
			chromedp.WaitVisible(chromedp.CSS("#redrive-confirm")))
		if e := ends(); e != 10 {
			t.Fatalf("the redrive ran before its confirmation: %d records", e)
		}
		step(t, ctx, "confirm", chromedp.Click(chromedp.CSS("#redrive-confirm")))
		waitFor(t, 30*time.Second, "the redrive's answer", func() string {
			out := eval[string](t, ctx, `document.querySelector("#redrive output").textContent`)
			if out != "Redrove 4 dead letters." {
				return out
			}
			return ""
		})
		waitFor(t, 30*time.Second, "4 records back in work", func() string {
			if e := ends(); e != 14 {
				return fmt.Sprintf("work holds %d records, want 14", e)
			}
			return ""
		})
	})

	t.Run("create and delete a topic with the forms", func(t *testing.T) {
		step(t, ctx, "create", chromedp.Navigate(n2.HTTP+"/console/topics"),
			chromedp.SetValue(chromedp.CSS(`#create-topic input[name="name"]`), "scratch"),
			chromedp.SetValue(chromedp.CSS(`#create-topic input[name="partitions"]`), "2"),
			chromedp.Click(chromedp.CSS(`#create-topic button`)))
		waitFor(t, 30*time.Second, "the new topic's page", func() string {
			if p := eval[string](t, ctx, `location.pathname`); p != "/console/topics/scratch" {
				return p + ": " + eval[string](t, ctx, `(document.querySelector("#create-topic output") || {}).textContent || ""`)
			}
			return ""
		})
		step(t, ctx, "delete", chromedp.WaitVisible(chromedp.CSS("#partitions")),
			chromedp.SetValue(chromedp.CSS(`#delete-topic input[name="confirm"]`), "scratch"),
			chromedp.Click(chromedp.CSS(`#delete-topic button`)))
		waitFor(t, 30*time.Second, "the topic list", func() string {
			if p := eval[string](t, ctx, `location.pathname`); p != "/console/topics" {
				return p
			}
			return ""
		})
		waitFor(t, 30*time.Second, "the topic gone", func() string {
			var tp struct{ Name string }
			if err := getJSON(n3.HTTP+"/api/v1/topics/scratch", &tp); err == nil || !strings.Contains(err.Error(), "404") {
				return fmt.Sprintf("still there: %v", err)
			}
			return ""
		})
	})

	t.Run("cross-origin POST refused", func(t *testing.T) {
		target := n1.HTTP + "/api/v1/topics/orders/delete"
		evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			fmt.Fprintf(w, `<!doctype html><form id="f" method="post" enctype="text/plain" action="%s">`+
				`<input name='{"confirm":"orders","x":"' value='"}'><button id="go">go</button></form>`, target)
		}))
		defer evil.Close()
		step(t, ctx, "open the other site", chromedp.Navigate(evil.URL), chromedp.WaitVisible(chromedp.CSS("#go")))
		created := eval[string](t, ctx, fmt.Sprintf(`fetch(%q, {method: "POST", mode: "no-cors", credentials: "include",
			body: JSON.stringify({name: "pwned"})}).then(() => "sent", (e) => String(e))`, n1.HTTP+"/api/v1/topics"),
			chromedp.EvalAwaitPromise)
		if created != "sent" {
			t.Fatalf("the cross-origin fetch: %s", created)
		}
		step(t, ctx, "submit the form", chromedp.Click(chromedp.CSS("#go")))
		waitFor(t, 30*time.Second, "the console's refusal", func() string {
			body := eval[string](t, ctx, `document.body ? document.body.innerText : ""`)
			if !strings.Contains(body, "cross-origin request refused") {
				return fmt.Sprintf("at %s: %q", eval[string](t, ctx, "location.href"), body)
			}
			return ""
		})
		var tp struct{ Name string }
		if err := getJSON(n1.HTTP+"/api/v1/topics/orders", &tp); err != nil || tp.Name != "orders" {
			t.Fatalf("the topic is gone after a cross-origin delete: %v", err)
		}
		if err := getJSON(n1.HTTP+"/api/v1/topics/pwned", &tp); err == nil || !strings.Contains(err.Error(), "404") {
			t.Fatalf("a cross-origin fetch created a topic: %v", err)
		}
	})
}
