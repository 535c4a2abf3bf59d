// Package tlstest makes a throwaway CA and node or client certificate files
// for tests of any package. Everything is written under t.TempDir(), and
// nothing is committed.
package tlstest
