"""Reference implementation of rollgate-canary's weighted tail test.

S = sum_b c_b K_{r_b}, K_r = canary values above the baseline's r-th
largest. Under H0 every arrangement of the pooled ranks is equally likely;
`tail_sum_sf` computes P(S >= s) by dynamic programming over (count,
partial sum), summing whole probability vectors (no cut-offs), and
`brute` enumerates every arrangement for small samples. Run as a script
it checks one against the other; `stats::tests` in the crate compares the
Rust implementation with values printed by `tail_sum_sf`:

    python3 benches/canary/tail_test.py
    python3 -c 'import tail_test as t; print(t.tail_sum_sf(146, [1,2,4,8,16,32,64], [1]*7, 2000, 2000))'
"""
import math, itertools
import numpy as np
from scipy.special import gammaln
def lchoose(a,b): return math.lgamma(a+1)-math.lgamma(b+1)-math.lgamma(a-b+1)

def step_pmf(A, nb, r0, r1):
    """pmf of G (canary in gaps r0..r1-1) given A canary left after the r0-th baseline."""
    d=r1-r0
    rest=nb-r1  # gaps after r1-th baseline: nb-r1+1
    tot=lchoose(A+nb-r0, nb-r0)
    return [math.exp(lchoose(g+d-1,d-1)+lchoose(A-g+rest,rest)-tot) for g in range(A+1)]

def tail_sum_sf(s_obs, rs, cs, nb, nc, stats=None):
    """P(S >= s_obs) exactly, S = sum c_b K_{r_b}, rs increasing distinct."""
    if s_obs<=0: return 1.0
    W=[sum(cs[b:]) for b in range(len(rs))]+[0]  # W[b] = weight of K_b and later
    states={(0,0):1.0}  # (k, s) after level b-1
    tail=0.0
    r0=0; work=0
    for b,(r1,c) in enumerate(zip(rs,cs)):
        new={}
        for (k,s),pr in states.items():
            pm=step_pmf(nc-k, nb, r0, r1)
            for g,q in enumerate(pm):
                k2=k+g; s2=s+c*k2
                work+=1
                # final S >= s2 + W[b+1]*k2
                if s2+W[b+1]*k2>=s_obs:
                    tail+=pr*sum(pm[g:]); break
                new[(k2,s2)]=new.get((k2,s2),0)+pr*q
        states=new; r0=r1
    if stats is not None: stats['work']=work; 
    return tail

def brute(s_obs, rs, cs, nb, nc):
    N=nb+nc; cnt=0; tot=0
    for pos in itertools.combinations(range(N), nc):  # positions of canary, 0 = top
        lab=[0]*N
        for p in pos: lab[p]=1
        S=0
        for r,c in zip(rs,cs):
            # canary before the r-th baseline
            seen=0; k=0
            for l in lab:
                if l==0:
                    seen+=1
                    if seen==r: break
                else: k+=1
            S+=c*k
        tot+=1; cnt+= S>=s_obs
    return cnt/tot
if __name__=='__main__':
    for nb,nc,rs,cs in [(5,4,[1,2,4],[1,1,1]),(6,5,[1,3],[2,1]),(4,6,[1,2,3],[1,1,1]),(7,5,[2,4,7],[1,2,1])]:
        for s in range(0,20,3):
            a=tail_sum_sf(s,rs,cs,nb,nc); bb=brute(s,rs,cs,nb,nc)
            assert abs(a-bb)<1e-12,(nb,nc,rs,cs,s,a,bb)
    print("tail_sum_sf equals enumeration on every case")
