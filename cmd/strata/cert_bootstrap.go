package main

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// certBootstrap makes what a secured cluster needs, keeping whatever
// already exists so that it can run at every start (compose does): a CA,
// a certificate per node (the node id is also its host name), a
// certificate per client and a gossip key.
func certBootstrap(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("strata cert bootstrap", flag.ContinueOnError)
	dir := fs.String("out", "./certs", "directory the files are written to")
	nodes := fs.String("nodes", "", "comma-separated node ids (each also a host name of its certificate)")
	clients := fs.String("clients", "admin", "comma-separated client names")
	if err := parseFlags(fs, interleave(fs, args)); err != nil {
		return err
	}
	for _, n := range splitList(*nodes) {
		if slices.Contains(splitList(*clients), n) || n == "ca" {
			return fmt.Errorf("%q names both a node and a client (or the CA): their files would clash", n)
		}
	}
	if err := os.MkdirAll(*dir, 0o700); err != nil {
		return err
	}
	exists := func(base string) bool {
		_, err := os.Stat(filepath.Join(*dir, base+".crt"))
		return err == nil
	}
	if !exists("ca") {
		if err := certCreateCA([]string{"--out", *dir}, out); err != nil {
			return err
		}
	}
	for _, id := range splitList(*nodes) {
		if !exists(id) {
			if err := certCreateNode([]string{id, "--out", *dir, "--hosts", id}, out); err != nil {
				return err
			}
		}
	}
	for _, name := range splitList(*clients) {
		if !exists(name) {
			if err := certCreateClient([]string{name, "--out", *dir}, out); err != nil {
				return err
			}
		}
	}
	keyFile := filepath.Join(*dir, "gossip.key")
	if _, err := os.Stat(keyFile); errors.Is(err, os.ErrNotExist) {
		key := make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
			return err
		}
		if err := os.WriteFile(keyFile, []byte(base64.StdEncoding.EncodeToString(key)+"\n"), 0o600); err != nil {
			return err
		}
		fmt.Fprintf(out, "wrote %s (gossip key, mode 0600)\n", keyFile)
	}
	fmt.Fprintf(out, "bootstrap: %s holds the CA, %d node and %d client certificates and the gossip key\n",
		*dir, len(splitList(*nodes)), len(splitList(*clients)))
	return nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
