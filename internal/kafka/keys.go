package kafka

// API keys the connection code refers to.
const (
	saslHandshakeKey    int16 = 17
	apiVersionsKey      int16 = 18
	saslAuthenticateKey int16 = 36
)
