package client

// SetStartSequence makes p number the records of every partition from seq
// instead of 0, to bring the wrap of the sequences near. Call it before
// the first record.
func SetStartSequence(p *Producer, seq int32) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.startSeq = int64(seq)
}
