"""Voice: speech in (audio -> VAD -> Whisper -> instruction) and speech out (narration -> TTS).

Plain-Python modules (no rclpy):
- ``audio``: I/O, resampling to 16 kHz, down-mix, file / microphone sources, playback;
- ``vad``: silero-vad (its ONNX model via onnxruntime) cutting a stream into utterances;
- ``asr``: Whisper backends: faster-whisper (bundled real tiny.en), openai-whisper;
- ``correction``: a transcript's out-of-vocabulary words swapped for sound-alike vocabulary
  words when Whisper, scoring both on the audio, agrees;
- ``reading``: Whisper's decoder stepped in PyTorch with only the vocabulary's words allowed (the
  reading of a transcript with unknown words);
- ``ct2_whisper``: the bundled CTranslate2 weights -> an openai-whisper checkpoint or model;
- ``listener``: the speech_in pipeline (capture + recognition threads);
- ``audio_msg``: /neon/utterance_audio (std_msgs/Float32MultiArray, 16 kHz mono) conversion;
- ``tts``: espeak-ng (default), Piper (CLI only, GPL), PersonaPlex;
- ``personaplex`` + ``oggopus``: client of PersonaPlex's websocket protocol (Ogg Opus audio);
- ``speech_queue``: newest narration wins, repeats throttled, output to speaker or WAV files
  (the sentences themselves come from neon_ros.runtime.narration);
The nodes are neon_ros/nodes/speech_in.py and speech_out.py; `neon-ros bench voice` is
neon_ros/tools/bench/voice.py.
"""
