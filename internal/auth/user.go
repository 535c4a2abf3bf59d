package auth

// User is a user as the metadata group stores it: its SCRAM credentials
// (salt, iterations, stored and server keys), never its password. It is
// inside the metadata group's commands and snapshots (package cluster),
// encoded as JSON: its JSON names must not change.
type User struct {
	Name        string       `json:"name"`
	Credentials []Credential `json:"credentials"`
}

// Credential returns the user's credential for mechanism m.
func (u User) Credential(m Mechanism) (Credential, bool) {
	for _, c := range u.Credentials {
		if c.Mechanism == m {
			return c, true
		}
	}
	return Credential{}, false
}
