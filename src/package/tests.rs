//! Unit tests of the packager on the small movies of the fuzz corpus.
