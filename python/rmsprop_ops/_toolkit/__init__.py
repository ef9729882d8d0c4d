"""Small pieces shared by the framework-neutral optimizer and the Paddle / MindSpore adapters."""
