package console

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/stratalog/strata/api/record"
)

// Message is a record as the console shows it.
type Message struct {
	Partition   int32        `json:"partition"`
	Offset      int64        `json:"offset"`
	TimestampMs int64        `json:"timestamp_ms"`
	Time        string       `json:"time"` // RFC 3339, UTC
	Key         Rendered     `json:"key"`
	Value       Rendered     `json:"value"`
	Headers     []HeaderView `json:"headers"`
}

// Rendered is bytes shown in a view: text, json (indented when the bytes
// are JSON, else text) or hex (a dump with offsets and the printable
// characters).
type Rendered struct {
	Text string `json:"text"`
	// View is how Text shows the bytes: text, json or hex.
	View string `json:"view"`
	Size int    `json:"size"`
	// Null is true for a missing key or value (as opposed to empty).
	Null bool `json:"null,omitempty"`
	// Binary is true when the bytes are not UTF-8 text.
	Binary bool `json:"binary,omitempty"`
	// Truncated is true when only the first MaxValueBytes are shown.
	Truncated bool `json:"truncated,omitempty"`
}

// HeaderView is a record header as shown.
type HeaderView struct {
	Key   string   `json:"key"`
	Value Rendered `json:"value"`
}

// message renders a record in view.
func (c *Console) message(partition int32, r record.Record, view string) Message {
	m := Message{Partition: partition, Offset: r.Offset, TimestampMs: r.Timestamp.UnixMilli(),
		Time: r.Timestamp.UTC().Format("2006-01-02T15:04:05.000Z07:00"), Headers: []HeaderView{}}
	m.Key = c.show(r.Key, view)
	m.Value = c.show(r.Value, view)
	for _, h := range r.Headers {
		m.Headers = append(m.Headers, HeaderView{Key: strings.ToValidUTF8(h.Key, "\uFFFD"), Value: c.show(h.Value, view)})
	}
	return m
}

// show shows b in view, cut to MaxValueBytes.
func (c *Console) show(b []byte, view string) Rendered {
	r := Rendered{Size: len(b), Null: b == nil, Binary: !utf8.Valid(b), View: view}
	if len(b) > c.cfg.MaxValueBytes {
		b, r.Truncated = b[:c.cfg.MaxValueBytes], true
	}
	switch view {
	case "hex":
		r.Text = hexDump(b)
	case "json":
		var out bytes.Buffer
		if !r.Truncated && json.Valid(b) && json.Indent(&out, b, "", "  ") == nil {
			r.Text = out.String()
			break
		}
		r.View = "text"
		r.Text = strings.ToValidUTF8(string(b), "\uFFFD")
	default:
		r.Text = strings.ToValidUTF8(string(b), "\uFFFD")
	}
	return r
}

// hexDump writes b as hexdump -C does: offset, 16 bytes in hex, and the
// printable ASCII characters (others as dots).
func hexDump(b []byte) string {
	var sb strings.Builder
	for off := 0; off < len(b); off += 16 {
		line := b[off:min(off+16, len(b))]
		fmt.Fprintf(&sb, "%08x ", off)
		for i := range 16 {
			if i == 8 {
				sb.WriteByte(' ')
			}
			if i < len(line) {
				fmt.Fprintf(&sb, " %02x", line[i])
			} else {
				sb.WriteString("   ")
			}
		}
		sb.WriteString("  |")
		for _, ch := range line {
			if ch >= 0x20 && ch < 0x7f {
				sb.WriteByte(ch)
			} else {
				sb.WriteByte('.')
			}
		}
		sb.WriteString("|\n")
	}
	return sb.String()
}
