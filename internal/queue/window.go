package queue

// window is a slice that is a window on an array and ends at the array's
// capacity: the floor moving on frees the array's front, which grow
// reuses, so a window that keeps moving at a steady size allocates
// nothing.
type window[T any] struct {
	s   []T // the window
	arr []T // its array
}

// grow extends the window to n elements, the new ones zero. When the
// array has no room at its end it moves the window to the array's front
// if that leaves at least as much room again as the window holds (so the
// copy is paid for by as many appends), else it allocates an array twice
// as large.
func (w *window[T]) grow(n int) {
	old := len(w.s)
	if n <= old {
		return
	}
	if n > cap(w.s) {
		if 2*n <= cap(w.arr) {
			end := cap(w.arr) - cap(w.s) + old // where the window ends in arr
			copy(w.arr, w.s)
			clear(w.arr[old:end]) // the moved elements' old places: drop their strings
			w.s = w.arr[:old]
		} else {
			w.arr = make([]T, max(2*n, 64))
			copy(w.arr, w.s)
			w.s = w.arr[:old]
		}
	}
	w.s = w.s[:n]
	clear(w.s[old:])
}

// trim drops the first n elements.
func (w *window[T]) trim(n int) {
	clear(w.s[:n])
	w.s = w.s[n:]
}

// cut drops the elements from n on.
func (w *window[T]) cut(n int) {
	clear(w.s[n:])
	w.s = w.s[:n]
}
