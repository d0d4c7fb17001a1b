"""One large value read by every child of a foreach (tests/test_executor_dask.py)."""

from runstore import FlowSpec, Parameter, step


class BigValueFlow(FlowSpec):
    size_mib = Parameter("size_mib", default=100, help="Size of the shared value in MiB.")
    width = Parameter("width", default=10, help="Children reading it.")

    @step
    def start(self):
        import numpy as np

        # Random bytes: nothing along the way can make them smaller.
        self.big = np.random.default_rng(3).integers(0, 256, self.size_mib << 20, dtype=np.uint8)
        self.items = list(range(self.width))
        self.next(self.read, foreach="items")

    @step
    def read(self):
        self.checksum = int(self.big[self.input::997].sum())
        self.next(self.join)

    @step
    def join(self, inputs):
        self.checksums = [i.checksum for i in inputs]
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    BigValueFlow()
