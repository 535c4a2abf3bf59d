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
	f.Add([]byte("n,,n=user="), []byte("c=,r=,p="))
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
