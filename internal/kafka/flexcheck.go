package kafka

import (
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kbin"
)

// Flexible requests (KIP-482) carry tag sections whose counts kmsg's
// decoders trust: a count of 2^32-1 with no bytes behind it makes a
// decoder loop that many times over an exhausted buffer (tens of seconds of
// CPU for a 19-byte request). So every flexible request version the
// listener serves is first walked by checkFlexible against its layout,
// with every count and length bounded by the bytes left; a version without
// a layout here is refused. (kmsg at franz-go's HEAD has the same loop.)

// Layout steps.
const (
	fString     = iota // compact string (or nullable: 0 is null)
	fBytes             // compact bytes
	fInt8              // bool, int8
	fInt16             //
	fInt32             //
	fInt64             //
	fTags              // a tag section
	fArray             // compact (nullable) array of the struct in elem
	fStrings           // compact array of compact strings
	fInt32Array        // compact array of int32
)

// field is one step of a layout.
type field struct {
	kind int
	elem []field // fArray
}

// flexLayouts are the layouts of the flexible versions served, by API key
// and version.
var flexLayouts = map[int16]map[int16][]field{
	9: { // OffsetFetch: group, topics [topic, partitions, tags], (v7) require stable, tags
		6: {{kind: fString}, {kind: fArray, elem: []field{{kind: fString}, {kind: fInt32Array}, {kind: fTags}}}, {kind: fTags}},
		7: {{kind: fString}, {kind: fArray, elem: []field{{kind: fString}, {kind: fInt32Array}, {kind: fTags}}}, {kind: fInt8}, {kind: fTags}},
	},
	15: {5: {{kind: fStrings}, {kind: fInt8}, {kind: fTags}}},      // DescribeGroups: groups, include authorized operations
	16: {3: {{kind: fTags}}, 4: {{kind: fStrings}, {kind: fTags}}}, // ListGroups: (v4) states filter
	18: {3: {{kind: fString}, {kind: fString}, {kind: fTags}}},     // ApiVersions: software name, version
	22: { // InitProducerId: transactional id, timeout, (v3+) producer id, epoch
		2: {{kind: fString}, {kind: fInt32}, {kind: fTags}},
		3: {{kind: fString}, {kind: fInt32}, {kind: fInt64}, {kind: fInt16}, {kind: fTags}},
		4: {{kind: fString}, {kind: fInt32}, {kind: fInt64}, {kind: fInt16}, {kind: fTags}},
	},
	36: {2: {{kind: fBytes}, {kind: fTags}}}, // SaslAuthenticate: bytes
}

var errBadFlexible = errors.New("malformed flexible request")

// checkFlexible walks body (after the request header) with key's layout at
// version, and reports a count or length past the end.
func checkFlexible(key, version int16, body []byte) error {
	layout, ok := flexLayouts[key][version]
	if !ok {
		return fmt.Errorf("%w: no layout for API key %d version %d", errBadFlexible, key, version)
	}
	rd := &kbin.Reader{Src: body}
	if err := walk(rd, layout); err != nil {
		return err
	}
	if len(rd.Src) != 0 {
		return fmt.Errorf("%w: %d bytes after the request", errBadFlexible, len(rd.Src))
	}
	return nil
}

func walk(rd *kbin.Reader, layout []field) error {
	for _, f := range layout {
		var err error
		switch f.kind {
		case fString, fBytes:
			err = skipLen(rd, 1)
		case fInt8:
			err = skip(rd, 1)
		case fInt16:
			err = skip(rd, 2)
		case fInt32:
			err = skip(rd, 4)
		case fInt64:
			err = skip(rd, 8)
		case fInt32Array:
			err = skipLen(rd, 4)
		case fStrings:
			err = eachElem(rd, func() error { return skipLen(rd, 1) })
		case fArray:
			err = eachElem(rd, func() error { return walk(rd, f.elem) })
		case fTags:
			err = skipTags(rd)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// count reads a compact length (stored plus one; 0 is null) and checks
// that n items of at least min bytes each fit in what is left.
func count(rd *kbin.Reader, minBytes int) (int, error) {
	v := rd.Uvarint()
	if rd.Complete() != nil {
		return 0, fmt.Errorf("%w: truncated length", errBadFlexible)
	}
	if v == 0 {
		return 0, nil
	}
	n := int(v - 1)
	if n > len(rd.Src)/max(minBytes, 1) {
		return 0, fmt.Errorf("%w: a length of %d with %d bytes left", errBadFlexible, n, len(rd.Src))
	}
	return n, nil
}

func skipLen(rd *kbin.Reader, size int) error {
	n, err := count(rd, size)
	if err != nil {
		return err
	}
	return skip(rd, n*size)
}

func eachElem(rd *kbin.Reader, fn func() error) error {
	n, err := count(rd, 1)
	if err != nil {
		return err
	}
	for range n {
		if err := fn(); err != nil {
			return err
		}
	}
	return nil
}

func skip(rd *kbin.Reader, n int) error {
	if n > len(rd.Src) {
		return fmt.Errorf("%w: %d bytes needed, %d left", errBadFlexible, n, len(rd.Src))
	}
	rd.Src = rd.Src[n:]
	return nil
}

// skipTags checks a tag section: each tag has a key, a size and that many
// bytes, so a count cannot exceed half the bytes left.
func skipTags(rd *kbin.Reader) error {
	n := rd.Uvarint()
	if rd.Complete() != nil {
		return fmt.Errorf("%w: truncated tag count", errBadFlexible)
	}
	if uint64(n) > uint64(len(rd.Src)/2) {
		return fmt.Errorf("%w: %d tags with %d bytes left", errBadFlexible, n, len(rd.Src))
	}
	for range n {
		rd.Uvarint() // key
		size := rd.Uvarint()
		if rd.Complete() != nil {
			return fmt.Errorf("%w: truncated tag", errBadFlexible)
		}
		if err := skip(rd, int(size)); err != nil {
			return err
		}
	}
	return nil
}
