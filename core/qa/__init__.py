"""What the kinds that answer questions share (eval, squad, math, vote, fine-tuning's tests): how a
question is asked and judged, how its row is written, and how runs of answers are voted over."""
