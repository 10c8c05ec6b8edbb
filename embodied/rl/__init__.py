"""RL fine-tuning of the VLA inside world-model rollouts (`embodied finetune`)."""
