package auth

import "errors"

var (
	// ErrAuthFailed is returned when a SCRAM exchange fails for any reason
	// that depends on the user or the password: a wrong password, an unknown
	// user, a proof or nonce that does not match. The reasons are not told
	// apart, so a client cannot learn which users exist.
	ErrAuthFailed = errors.New("auth: authentication failed")
	// ErrMalformed is returned for a SCRAM message that does not parse.
	ErrMalformed = errors.New("auth: malformed SCRAM message")
	// ErrChannelBinding is returned when a client asks for channel binding,
	// which Strata does not offer.
	ErrChannelBinding = errors.New("auth: channel binding not supported")
	// ErrAuthzid is returned when the authorization identity of a client-first
	// message differs from the user.
	ErrAuthzid = errors.New("auth: authorization identity differs from the user")
	// ErrConversationDone is returned by Step after the exchange has finished
	// or failed.
	ErrConversationDone = errors.New("auth: SCRAM conversation already finished")
	// ErrServerSignature is returned by a ClientConversation when the server's
	// final message does not prove that it knows the credential.
	ErrServerSignature = errors.New("auth: server signature mismatch")
	// ErrServerError is returned by a ClientConversation when the server
	// answers the final message with an error (e=...).
	ErrServerError = errors.New("auth: server rejected the authentication")
	// ErrUnknownMechanism is returned for a mechanism other than
	// SCRAM-SHA-256 and SCRAM-SHA-512.
	ErrUnknownMechanism = errors.New("auth: unknown SASL mechanism")
	// ErrIterations is returned for an iteration count outside
	// [MinIterations, MaxIterations].
	ErrIterations = errors.New("auth: iteration count out of range")
	// ErrInvalidPassword is returned for an empty password, one that is not
	// valid UTF-8, or one that contains control characters.
	ErrInvalidPassword = errors.New("auth: invalid password")
	// ErrInvalidUsername is returned for an empty user name, one that is not
	// valid UTF-8, or one that contains control characters.
	ErrInvalidUsername = errors.New("auth: invalid user name")
	// ErrInvalidCredential is returned by Credential.Validate.
	ErrInvalidCredential = errors.New("auth: invalid credential")
	// ErrInvalidACL is returned by ACL.Validate.
	ErrInvalidACL = errors.New("auth: invalid ACL")
)
