package broker

import (
	"strings"
	"testing"
)

func TestParseFailpoints(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    []string
		wantErr string
	}{
		{in: "", want: nil},
		{in: "ack-before-commit", want: []string{"ack-before-commit"}},
		{in: " ack-before-commit , ", want: []string{"ack-before-commit"}},
		{in: "ack-before-commit,nope", wantErr: `unknown failpoint "nope"`},
		{in: "ACK-BEFORE-COMMIT", wantErr: "unknown failpoint"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			on, err := parseFailpoints(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), "STRATA_FAILPOINTS") {
					t.Fatalf("parseFailpoints(%q) = %v, %v; want an error with %q", tc.in, on, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(on) != len(tc.want) {
				t.Fatalf("parseFailpoints(%q) = %v, want %v", tc.in, on, tc.want)
			}
			for _, n := range tc.want {
				if !on[n] {
					t.Fatalf("parseFailpoints(%q) = %v, want %v", tc.in, on, tc.want)
				}
			}
		})
	}
}
