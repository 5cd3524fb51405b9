#!/usr/bin/env python3
"""Reference values for tests/core_metrics.cpp: MMSA's regression metrics (utils/metricsTop.py) in numpy,
with sklearn's weighted F1 written out. Run with Debian's python3-numpy: /usr/bin/python3 scripts/metrics_reference.py"""
import numpy as np
def f1w(t,p):
    labels=sorted(set(t)|set(p)); tot=0
    for c in labels:
        tp=sum(1 for a,b in zip(t,p) if a==c and b==c); fp=sum(1 for a,b in zip(t,p) if a!=c and b==c); fn=sum(1 for a,b in zip(t,p) if a==c and b!=c)
        d=2*tp+fp+fn; f=0 if d==0 else 2*tp/d; tot+=f*sum(1 for a in t if a==c)
    return tot/len(t)
def mmsa(p,y):
    p=np.array(p,dtype=np.float32); y=np.array(y,dtype=np.float32)
    nz=np.array([i for i,e in enumerate(y) if e!=0])
    mae=np.mean(np.absolute(p-y)); corr=np.corrcoef(p,y)[0][1]
    a7=np.sum(np.round(np.clip(p,-3,3))==np.round(np.clip(y,-3,3)))/len(y)
    a5=np.sum(np.round(np.clip(p,-2,2))==np.round(np.clip(y,-2,2)))/len(y)
    a3=np.sum(np.round(np.clip(p,-1,1))==np.round(np.clip(y,-1,1)))/len(y)
    bp=(p[nz]>0); by=(y[nz]>0); non0=np.mean(bp==by); f1n=f1w(list(by),list(bp))
    bp2=p>=0; by2=y>=0; has0=np.mean(bp2==by2); f1h=f1w(list(by2),list(bp2))
    r=lambda x: round(float(x),4)
    return dict(mae=r(mae),corr=r(corr),acc7=r(a7),acc5=r(a5),acc3=r(a3),non0=r(non0),f1n=r(f1n),has0=r(has0),f1h=r(f1h))
print(mmsa([0.5,-1.2,0.0,2.6,-0.4,1.5,2.5,-2.5],[1.0,-1.0,0.0,3.0,0.4,2.5,2.0,-3.0]))
print(mmsa([0.0,0.3,-0.2,1.0],[0.0,-0.6666667,0.0,1.3333334]))
