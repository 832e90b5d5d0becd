"""Voice: speech in (audio -> VAD -> Whisper -> instruction) and speech out (narration -> TTS).

Plain-Python modules (no rclpy): ``audio`` (I/O, resampling, down-mix), ``vad`` (silero-vad),
``asr`` (faster-whisper / openai-whisper), ``tts`` (espeak-ng, Piper CLI, PersonaPlex),
``personaplex`` (client of the PersonaPlex server), ``narration`` (what Neon says),
``bench`` (`neon-ros bench voice`). The nodes are neon_ros/nodes/speech_in.py and speech_out.py.
"""
