_base_ = ['./lsq-w4a4_smallcnn_1xb64-10e_digits_sam.py']
model = dict(quantization=dict(weight_bits=2, act_bits=2))
optim_wrapper = dict(optimizer=dict(weight_decay=2.5e-5))
