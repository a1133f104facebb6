# CodeContests 1238_B "Kill 'Em All": shoot the rightmost monsters; each shot pushes the rest by r.
import sys
data = sys.stdin.buffer.read().split()
q = int(data[0]); p = 1; out = []
for _ in range(q):
    n, r = int(data[p]), int(data[p + 1]); p += 2
    xs = sorted(set(int(x) for x in data[p:p + n]), reverse=True); p += n
    k = 0
    for x in xs:
        if x - k * r <= 0:
            break
        k += 1
    out.append(str(k))
print("\n".join(out))
