package pia_test

import (
	"crypto/rand"
	"crypto/rsa"
	"sync"
)

var (
	keyOnce sync.Once
	key     *rsa.PrivateKey
)

func testKey() *rsa.PrivateKey {
	keyOnce.Do(func() { key, _ = rsa.GenerateKey(rand.Reader, 1024) })
	return key
}
