# CodeContests 1000_A "Codehorses T-shirts": sizes of this year's list not matched by last year's.
from collections import Counter
import sys
data = sys.stdin.read().split()
n = int(data[0])
a = Counter(data[1:1 + n])
b = Counter(data[1 + n:1 + 2 * n])
print(sum((b - a).values()))
