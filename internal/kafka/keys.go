package kafka

// API keys the connection code refers to.
const (
	fetchKey            int16 = 1
	joinGroupKey        int16 = 11
	syncGroupKey        int16 = 14
	saslHandshakeKey    int16 = 17
	apiVersionsKey      int16 = 18
	saslAuthenticateKey int16 = 36
)
