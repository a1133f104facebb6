# CodeContests 12_B "Correct Solution?": is m the smallest number (no leading zeros) made of n's digits?
n = input().strip()
m = input().strip()
d = sorted(n)
if d[0] == '0' and len(d) > 1:
    for i, c in enumerate(d):
        if c != '0':
            d[0], d[i] = d[i], d[0]
            break
print("OK" if ''.join(d) == m else "WRONG_ANSWER")
