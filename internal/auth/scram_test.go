package auth

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"
)

// RFC 7677 section 3 test vector.
const (
	rfcUser        = "user"
	rfcPassword    = "pencil"
	rfcClientNonce = "rOprNGfwEbeRWgbNEkqO"
	rfcServerNonce = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
	rfcSalt        = "W22ZaJ0SNY7soEsUEjb6gQ=="
	rfcClientFirst = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
	rfcServerFirst = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
	rfcClientFinal = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
	rfcServerFinal = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
)

func fixedNonce(n string) func() (string, error) {
	return func() (string, error) { return n, nil }
}

func rfcCredential(t testing.TB) Credential {
	t.Helper()
	salt, err := base64.StdEncoding.DecodeString(rfcSalt)
	if err != nil {
		t.Fatal(err)
	}
	cred, err := newCredentialWithSalt(ScramSHA256, rfcPassword, salt, 4096)
	if err != nil {
		t.Fatal(err)
	}
	return cred
}

func lookupOf(users map[string]Credential) func(string) (Credential, bool) {
	return func(u string) (Credential, bool) {
		c, ok := users[u]
		return c, ok
	}
}

func TestSCRAMRFC7677Server(t *testing.T) {
	t.Parallel()
	srv := NewServerConversation(ScramSHA256, lookupOf(map[string]Credential{rfcUser: rfcCredential(t)}))
	srv.nonce = fixedNonce(rfcServerNonce)
	first, err := srv.Step([]byte(rfcClientFirst))
	if err != nil || string(first) != rfcServerFirst {
		t.Fatalf("server-first = %q, %v; want %q", first, err, rfcServerFirst)
	}
	final, err := srv.Step([]byte(rfcClientFinal))
	if err != nil || string(final) != rfcServerFinal {
		t.Fatalf("server-final = %q, %v; want %q", final, err, rfcServerFinal)
	}
	if !srv.Done() || srv.Username() != rfcUser {
		t.Fatalf("Done=%v Username=%q", srv.Done(), srv.Username())
	}
	if _, err := srv.Step([]byte(rfcClientFinal)); !errors.Is(err, ErrConversationDone) {
		t.Fatalf("step after done: %v", err)
	}
}

func TestSCRAMRFC7677Client(t *testing.T) {
	t.Parallel()
	cl := NewClientConversation(ScramSHA256, rfcUser, rfcPassword)
	cl.nonce = fixedNonce(rfcClientNonce)
	steps := []struct{ in, want string }{
		{"", rfcClientFirst},
		{rfcServerFirst, rfcClientFinal},
		{rfcServerFinal, ""},
	}
	for i, s := range steps {
		var in []byte
		if s.in != "" {
			in = []byte(s.in)
		}
		out, err := cl.Step(in)
		if err != nil || string(out) != s.want {
			t.Fatalf("step %d = %q, %v; want %q", i, out, err, s.want)
		}
	}
	if !cl.Done() {
		t.Fatal("client not done")
	}
}

// exchange runs a full conversation and returns the server's and the
// client's errors (the first one that happened on each side).
func exchange(t *testing.T, srv *ServerConversation, cl *ClientConversation) (srvErr, clErr error) {
	t.Helper()
	msg, err := cl.Step(nil)
	for i := 0; i < 4 && err == nil; i++ {
		var reply []byte
		if reply, srvErr = srv.Step(msg); srvErr != nil {
			return srvErr, nil
		}
		if msg, err = cl.Step(reply); err != nil || msg == nil {
			break
		}
	}
	return nil, err
}

func TestSCRAMRoundTrip(t *testing.T) {
	t.Parallel()
	for _, m := range Mechanisms() {
		t.Run(string(m), func(t *testing.T) {
			cred, err := NewCredential(m, "s3cret pass", MinIterations)
			if err != nil {
				t.Fatal(err)
			}
			for _, user := range []string{"alice", "we,ird=name", "ünï"} {
				srv := NewServerConversation(m, lookupOf(map[string]Credential{user: cred}))
				cl := NewClientConversation(m, user, "s3cret pass")
				if srvErr, clErr := exchange(t, srv, cl); srvErr != nil || clErr != nil {
					t.Fatalf("user %q: server %v, client %v", user, srvErr, clErr)
				}
				if !srv.Done() || !cl.Done() || srv.Username() != user {
					t.Fatalf("user %q: server done %v (%q), client done %v", user, srv.Done(), srv.Username(), cl.Done())
				}
			}
		})
	}
}

func TestSCRAMFailures(t *testing.T) {
	t.Parallel()
	cred256, err := NewCredential(ScramSHA256, "right", MinIterations)
	if err != nil {
		t.Fatal(err)
	}
	users := lookupOf(map[string]Credential{"alice": cred256})
	for _, tc := range []struct {
		name, user, password string
		mech                 Mechanism
	}{
		{"wrong password", "alice", "wrong", ScramSHA256},
		{"unknown user", "mallory", "right", ScramSHA256},
		{"credential of another mechanism", "alice", "right", ScramSHA512},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := NewServerConversation(tc.mech, users)
			cl := NewClientConversation(tc.mech, tc.user, tc.password)
			srvErr, clErr := exchange(t, srv, cl)
			if srvErr != ErrAuthFailed || clErr != nil {
				t.Fatalf("server %v, client %v; want exactly ErrAuthFailed from the server", srvErr, clErr)
			}
			if srv.Done() || srv.Username() != "" {
				t.Fatalf("failed conversation: Done=%v Username=%q", srv.Done(), srv.Username())
			}
		})
	}
}

func TestSCRAMUnknownUserLooksReal(t *testing.T) {
	t.Parallel()
	cred, err := NewCredential(ScramSHA256, "pw", DefaultIterations)
	if err != nil {
		t.Fatal(err)
	}
	users := lookupOf(map[string]Credential{"alice": cred})
	serverFirst := func(user string, key []byte) string {
		srv := NewServerConversation(ScramSHA256, users)
		if key != nil {
			srv.SetFakeSaltKey(key)
		}
		srv.nonce = fixedNonce("S")
		out, err := srv.Step([]byte("n,,n=" + user + ",r=C"))
		if err != nil {
			t.Fatalf("%s: %v", user, err)
		}
		return string(out)
	}
	real, fake := serverFirst("alice", nil), serverFirst("bob", nil)
	_, realSalt, realIter, err1 := parseServerFirst(real)
	_, fakeSalt, fakeIter, err2 := parseServerFirst(fake)
	if err1 != nil || err2 != nil || len(realSalt) != len(fakeSalt) || realIter != fakeIter {
		t.Fatalf("real %q and fake %q differ in shape (%v, %v)", real, fake, err1, err2)
	}
	if serverFirst("bob", nil) != fake {
		t.Fatal("fake salt is not deterministic")
	}
	key := []byte("cluster secret")
	if keyed1, keyed2 := serverFirst("bob", key), serverFirst("bob", key); keyed1 != keyed2 || keyed1 == fake {
		t.Fatal("SetFakeSaltKey does not decide the fake salt")
	}
}

func TestSCRAMTamperedFinal(t *testing.T) {
	t.Parallel()
	cred := rfcCredential(t)
	for _, tc := range []struct {
		name, final string
		want        error
	}{
		{"nonce", strings.Replace(rfcClientFinal, "$k0,", "$k1,", 1), ErrAuthFailed},
		{"client nonce part", strings.Replace(rfcClientFinal, "r=rOpr", "r=rOpR", 1), ErrAuthFailed},
		{"proof", strings.Replace(rfcClientFinal, "p=dHzb", "p=dHzc", 1), ErrAuthFailed},
		{"channel binding", strings.Replace(rfcClientFinal, "c=biws", "c=eSws", 1), ErrAuthFailed},
		{"short proof", rfcClientFinal[:strings.LastIndex(rfcClientFinal, "p=")] + "p=AAAA", ErrMalformed},
		{"no proof", rfcClientFinal[:strings.LastIndex(rfcClientFinal, ",p=")], ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := NewServerConversation(ScramSHA256, lookupOf(map[string]Credential{rfcUser: cred}))
			srv.nonce = fixedNonce(rfcServerNonce)
			if _, err := srv.Step([]byte(rfcClientFirst)); err != nil {
				t.Fatal(err)
			}
			out, err := srv.Step([]byte(tc.final))
			if !errors.Is(err, tc.want) || out != nil || srv.Done() {
				t.Fatalf("got %q, %v, done=%v; want %v", out, err, srv.Done(), tc.want)
			}
			if _, err := srv.Step([]byte(rfcClientFinal)); !errors.Is(err, ErrConversationDone) {
				t.Fatalf("retry after failure: %v", err)
			}
		})
	}
}

func TestSCRAMClientFirstRejected(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		msg  string
		want error
	}{
		{"p=tls-unique,,n=user,r=abc", ErrChannelBinding},
		{"y,,n=user,r=abc", ErrChannelBinding},
		{"n,a=other,n=user,r=abc", ErrAuthzid},
		{"n,x=user,n=user,r=abc", ErrMalformed},
		{"n,,m=ext,n=user,r=abc", ErrMalformed},
		{"n,,n=us=3Xr,r=abc", ErrMalformed},
		{"n,,n=user=", ErrMalformed},
		{"n,,n=user=,r=abc", ErrMalformed},
		{"n,,n=user=2,r=abc", ErrMalformed},
		{"n,,n=,r=abc", ErrMalformed},
		{"n,,n=user,r=", ErrMalformed},
		{"n,,n=user,r=a b", ErrMalformed},
		{"n,,r=abc,n=user", ErrMalformed},
		{"n,,n=user", ErrMalformed},
		{"n,,n=user,r=abc,=x", ErrMalformed},
		{"", ErrMalformed},
		{"n,,n=user,r=" + strings.Repeat("a", MaxMessageBytes), ErrMalformed},
	} {
		srv := NewServerConversation(ScramSHA256, lookupOf(nil))
		if out, err := srv.Step([]byte(tc.msg)); !errors.Is(err, tc.want) || out != nil {
			t.Errorf("%.40q: got %q, %v; want %v", tc.msg, out, err, tc.want)
		}
	}
	// An authzid equal to the user is accepted and must be echoed in c=.
	cred := rfcCredential(t)
	srv := NewServerConversation(ScramSHA256, lookupOf(map[string]Credential{"a,b": cred}))
	if _, err := srv.Step([]byte("n,a=a=2Cb,n=a=2Cb,r=abc")); err != nil {
		t.Fatalf("authzid equal to the user: %v", err)
	}
	if srv.gs2Header != "n,a=a=2Cb," || srv.user != "a,b" {
		t.Fatalf("gs2 header %q, user %q", srv.gs2Header, srv.user)
	}
}

func TestSCRAMClientRejectsServer(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, first, final string
		want               error
	}{
		{"nonce not extended", "r=" + rfcClientNonce + ",s=" + rfcSalt + ",i=4096", "", ErrMalformed},
		{"foreign nonce", "r=XXXX" + rfcServerNonce + ",s=" + rfcSalt + ",i=4096", "", ErrMalformed},
		{"weak iterations", strings.Replace(rfcServerFirst, "i=4096", "i=4095", 1), "", ErrIterations},
		{"huge iterations", strings.Replace(rfcServerFirst, "i=4096", "i=999999999", 1), "", ErrIterations},
		{"bad signature", rfcServerFirst, "v=AAAA" + rfcServerFinal[6:], ErrServerSignature},
		{"server error", rfcServerFirst, "e=invalid-proof", ErrServerError},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cl := NewClientConversation(ScramSHA256, rfcUser, rfcPassword)
			cl.nonce = fixedNonce(rfcClientNonce)
			if _, err := cl.Step(nil); err != nil {
				t.Fatal(err)
			}
			_, err := cl.Step([]byte(tc.first))
			if tc.final != "" && err == nil {
				_, err = cl.Step([]byte(tc.final))
			}
			if !errors.Is(err, tc.want) || cl.Done() {
				t.Fatalf("got %v, done=%v; want %v", err, cl.Done(), tc.want)
			}
		})
	}
}

func TestCredentialVerify(t *testing.T) {
	t.Parallel()
	for _, m := range Mechanisms() {
		cred, err := NewCredential(m, "correct horse", MinIterations)
		if err != nil {
			t.Fatal(err)
		}
		if err := cred.Validate(); err != nil {
			t.Fatalf("%s: %v", m, err)
		}
		if !cred.Verify("correct horse") {
			t.Fatalf("%s: right password rejected", m)
		}
		for _, pw := range []string{"correct horsE", "", "correct horse\n"} {
			if cred.Verify(pw) {
				t.Fatalf("%s: %q accepted", m, pw)
			}
		}
		other, _ := NewCredential(m, "correct horse", MinIterations)
		if string(other.Salt) == string(cred.Salt) || string(other.StoredKey) == string(cred.StoredKey) {
			t.Fatalf("%s: two credentials share a salt", m)
		}
	}
	if !rfcCredential(t).Verify(rfcPassword) {
		t.Fatal("RFC credential does not verify")
	}
}

func TestNewCredentialRejects(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		mech     Mechanism
		password string
		iter     int
		want     error
	}{
		{"mechanism", "SCRAM-SHA-1", "pw", MinIterations, ErrUnknownMechanism},
		{"few iterations", ScramSHA256, "pw", MinIterations - 1, ErrIterations},
		{"many iterations", ScramSHA256, "pw", MaxIterations + 1, ErrIterations},
		{"empty password", ScramSHA256, "", MinIterations, ErrInvalidPassword},
		{"control character", ScramSHA256, "pass\x00word", MinIterations, ErrInvalidPassword},
		{"C1 control", ScramSHA256, "pass\u0085word", MinIterations, ErrInvalidPassword},
		{"invalid UTF-8", ScramSHA256, "pass\xffword", MinIterations, ErrInvalidPassword},
	} {
		if _, err := NewCredential(tc.mech, tc.password, tc.iter); !errors.Is(err, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, err, tc.want)
		}
	}
}

func TestCredentialValidate(t *testing.T) {
	t.Parallel()
	good := rfcCredential(t)
	for _, tc := range []struct {
		name   string
		mutate func(*Credential)
	}{
		{"mechanism", func(c *Credential) { c.Mechanism = "PLAIN" }},
		{"stored key size", func(c *Credential) { c.StoredKey = c.StoredKey[:31] }},
		{"server key size", func(c *Credential) { c.Mechanism = ScramSHA512 }},
		{"salt", func(c *Credential) { c.Salt = c.Salt[:8] }},
		{"iterations", func(c *Credential) { c.Iterations = 1 }},
	} {
		c := good
		tc.mutate(&c)
		if err := c.Validate(); !errors.Is(err, ErrInvalidCredential) {
			t.Errorf("%s: got %v", tc.name, err)
		}
		if c.Verify(rfcPassword) {
			t.Errorf("%s: invalid credential verifies", tc.name)
		}
	}
}

func TestSASLName(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"plain", "a,b", "a=b", "=2C", ",=,="} {
		enc := encodeSASLName(name)
		if strings.ContainsRune(enc, ',') {
			t.Fatalf("%q encodes to %q with a comma", name, enc)
		}
		if dec, err := decodeSASLName(enc); err != nil || dec != name {
			t.Fatalf("%q -> %q -> %q, %v", name, enc, dec, err)
		}
	}
}
