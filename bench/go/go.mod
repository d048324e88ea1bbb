// The Go twins of tether's C benchmarks: one main package per directory,
// standard library only, so they build offline with Debian's golang-go.
module tether/bench

go 1.19
