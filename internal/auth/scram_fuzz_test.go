package auth

import "testing"

// FuzzServerStep feeds two arbitrary client messages to a server
// conversation with a fixed nonce (so the RFC seeds reach the proof check).
// It must never panic, and only a correct proof may succeed.
func FuzzServerStep(f *testing.F) {
	cred := rfcCredential(f)
	f.Add([]byte(rfcClientFirst), []byte(rfcClientFinal))
	f.Add([]byte("n,a=user,n=user,r=rOprNGfwEbeRWgbNEkqO"), []byte("c=bixhPXVzZXIs,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=AAAA"))
	f.Add([]byte("n,,n=us=2Cer,r=abc,ext=1"), []byte("c=biws,r=abc%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,x=y,p=AA=="))
	f.Add([]byte("p=tls-unique,,n=user,r=abc"), []byte(""))
	f.Add([]byte("n,,n=user=,r=abc"), []byte("c=,r=,p="))
	f.Add([]byte("n,,n=us=2,r=abc"), []byte("c=biws,r=abc,p=="))
	f.Add([]byte("n,,m=x,n=user,r=a"), []byte(",,,"))
	f.Add([]byte("n,"), []byte("p=="))
	f.Fuzz(func(t *testing.T, first, final []byte) {
		srv := NewServerConversation(ScramSHA256, lookupOf(map[string]Credential{rfcUser: cred}))
		srv.nonce = fixedNonce(rfcServerNonce)
		if _, err := srv.Step(first); err != nil {
			if srv.Done() || srv.Username() != "" {
				t.Fatal("done after a failed first step")
			}
			return
		}
		out, err := srv.Step(final)
		switch {
		case err == nil && (!srv.Done() || srv.Username() != rfcUser || len(out) == 0):
			t.Fatalf("success without a usable result: %q %q", out, srv.Username())
		case err != nil && (srv.Done() || out != nil):
			t.Fatal("failure left the conversation done")
		}
	})
}

// FuzzClientStep feeds arbitrary server messages to a client conversation
// (a Go client must survive a hostile server). It must never panic, and only
// the right server signature may finish the exchange.
func FuzzClientStep(f *testing.F) {
	f.Add([]byte(rfcServerFirst), []byte(rfcServerFinal))
	f.Add([]byte(rfcServerFirst), []byte("e=invalid-proof"))
	f.Add([]byte(rfcServerFirst), []byte("v=AAAA,ext=1"))
	f.Add([]byte("r="+rfcClientNonce+"x,s=,i=4096"), []byte(""))
	f.Add([]byte("m=x,r=a,s=b,i=c"), []byte("v="))
	f.Add([]byte("r=,s=AAAA,i=-1"), []byte(","))
	f.Fuzz(func(t *testing.T, first, final []byte) {
		if _, _, iter, err := parseServerFirst(string(first)); err == nil && iter > 2*MinIterations {
			return // valid but slow (PBKDF2): keeps the fuzzer fast
		}
		cl := NewClientConversation(ScramSHA256, rfcUser, rfcPassword)
		cl.nonce = fixedNonce(rfcClientNonce)
		if _, err := cl.Step(nil); err != nil {
			t.Fatal(err)
		}
		if _, err := cl.Step(first); err != nil {
			return
		}
		if _, err := cl.Step(final); err == nil && (!cl.Done() || string(first) != rfcServerFirst) {
			t.Fatalf("finished with server-first %q, server-final %q", first, final)
		}
	})
}
