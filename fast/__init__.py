"""MP-BADNet fast implementation: the same public functions as :mod:`refimpl`, over numpy.

For equal seeds it produces bit-identical shares and transcripts; all speed work lives here.
"""
