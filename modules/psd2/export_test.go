package psd2

// BodyReleased lets the external tests watch the body buffer pool.
var BodyReleased = &bodyReleased
