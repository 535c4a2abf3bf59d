//go:build !unix

package broker

import (
	"errors"
	"fmt"
)

// statfsFree is not implemented here: the guard logs once and allows
// every produce.
func statfsFree(dir string) (int64, error) {
	return 0, fmt.Errorf("statfs %s: %w", dir, errors.ErrUnsupported)
}
