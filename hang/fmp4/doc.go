// Package fmp4 converts between fragmented MP4 and hang broadcasts: Reader
// turns the stream ffmpeg writes with -movflags
// frag_keyframe+empty_moov+default_base_moof into a hang catalog and
// frames, Writer turns a hang video rendition back into fragmented MP4 that
// ffmpeg, ffprobe and ffplay read, from a file or a pipe. Boxes are parsed
// and written with github.com/Eyevinn/mp4ff.
//
// Reader also reads progressive (non-fragmented) MP4, what ffmpeg writes
// by default and cameras and phones record, from a file: its moov's sample
// tables say where each sample is, wherever the moov sits. A pipe cannot
// seek to them, so from a pipe such input is refused with the ffmpeg
// command that remuxes it to fragmented MP4.
//
// Reader also takes the first AAC track as an audio rendition, and Writer
// (AddAudio) writes one back. H.264 is
// supported both ways. Reader publishes it as hang's legacy
// container with the avcC record as the catalog description (frames are
// MP4 samples: length-prefixed NAL units); Writer also takes H.264 in
// Annex B without a description (what @moq/publish sends), building the
// avcC record from the first keyframe's parameter sets.
package fmp4
