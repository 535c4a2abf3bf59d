package kafka

import (
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// ApiVersions 0-3: the API keys and versions registered in this package,
// and nothing else. A request newer than 3 gets a version 0 answer with
// UNSUPPORTED_VERSION and the list (KIP-511), so the client retries with a
// version it shares.
func init() { register(apiVersionsKey, 0, 3, handleApiVersions) }

func handleApiVersions(s *Server, r *request) (finish, error) {
	resp := kmsg.NewPtrApiVersionsResponse()
	resp.SetVersion(r.version)
	if r.version > apis[apiVersionsKey].max {
		resp.SetVersion(0)
		resp.ErrorCode = kerr.UnsupportedVersion.Code
	}
	keys := make([]int16, 0, len(apis))
	for k := range apis {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		a := apis[k]
		v := kmsg.NewApiVersionsResponseApiKey()
		v.ApiKey, v.MinVersion, v.MaxVersion = a.key, a.min, a.max
		resp.ApiKeys = append(resp.ApiKeys, v)
	}
	return done(resp), nil
}
